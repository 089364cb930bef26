"""`make demo`: bring up examples/hello on this machine and show it answering.

Uses the same CLI a person would (`serve up`, `serve status`), then talks to the endpoint
over HTTP: one plain answer and one streamed token by token. The service keeps running
afterwards; the last lines say how to look at it and take it down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVE = [sys.executable, "-m", "controller"]
CHAT = {"model": "hello-1", "messages": [{"role": "user", "content": "what are spot GPUs?"}]}


def serve(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*SERVE, *args],
        cwd=ROOT,
        env=env,
        text=True,
        check=check,
        capture_output=args[0] == "status" and "--json" in args,
    )


def main() -> int:
    print("$ serve up examples/hello/service.yaml -n hello", flush=True)
    existing = serve("status", "hello", "--json", check=False)
    if existing.returncode == 0:
        print("(hello is already running; reusing it)")
    else:
        serve("up", "examples/hello/service.yaml", "-n", "hello")
    svc = json.loads(serve("status", "hello", "--json").stdout)
    endpoint = svc["endpoint"]
    print("\n$ serve status", flush=True)
    serve("status")

    print(f"\n$ curl {endpoint}/v1/chat/completions -d '{json.dumps(CHAT)}'")
    answer = _post_with_retry(f"{endpoint}/v1/chat/completions", CHAT)
    print(json.dumps(answer, indent=2))

    print(f"\n$ curl -N {endpoint}/v1/chat/completions  (stream: true)")
    with httpx.stream(
        "POST",
        f"{endpoint}/v1/chat/completions",
        json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        timeout=30,
    ) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:  # none in the usage chunk
                    print(choice["delta"].get("content", ""), end="", flush=True)
    print("\n")
    _wait_for_tokens()
    print("$ serve status hello   (the answers' usage: tokens/s and $ per million tokens)")
    serve("status", "hello")

    print(f"\nhello is serving at {endpoint}. Try:")
    print("  .venv/bin/serve status hello          # replicas, zones, cost")
    print("  .venv/bin/serve logs hello --replica 1")
    print("  .venv/bin/serve down hello            # stop it")
    return 0


def _wait_for_tokens(timeout: float = 15.0) -> None:
    """The load balancer reports tokens with its next sync (every 2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc = json.loads(serve("status", "hello", "--json").stdout)
        if svc["tokens"]["tokens_so_far"]:
            return
        time.sleep(0.5)


def _post_with_retry(url: str, body: dict) -> dict:
    deadline = time.monotonic() + 30
    while True:
        try:
            resp = httpx.post(url, json=body, timeout=10)
            if resp.status_code == 200:
                return resp.json()  # type: ignore[no-any-return]
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within 30s")
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
