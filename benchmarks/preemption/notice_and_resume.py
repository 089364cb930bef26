"""What a spot preemption costs the end users of a service, with and without preemption
notices and stream resume: four runs of the same load through the same preemptions.

    .venv/bin/python benchmarks/preemption/notice_and_resume.py [--seconds-after 20]
        [--clients 12] [--notice 20] [--token-delay 0.1] [--json out.json]

A real controller (its own SERVE_HOME, SQLite, ticks and syncs every 0.5 s) runs
examples/hello as 3 spot replicas in 3 zones of the local market. `--clients` threads drive
a steady mixed load through the official `openai` client (every other request streamed,
about 2 s per answer at `--token-delay`). Each run then preempts local-a, waits for the
service to heal, and preempts local-b, with the market's `--notice` (or none). A request
fails when the client gets an error; a stream is truncated when it ends without a
finish_reason, and wrong when its text differs from the uninterrupted answer to the same
prompt (the example's output is a function of the prompt). The resume gap comes from the
load balancer's own metrics (`lb_stream_resume_gap_seconds`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.processes import ControllerProcess, Env, wait_until  # noqa: E402

NAME = "preempt"
YAML = """
name: preempt
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 60, timeout_seconds: 2}}
  replica_policy: {{min_replicas: 3, max_replicas: 3, num_overprovision: 0}}
  resume_streams: {resume}
  spot_placer: dynamic_fallback
resources: {{ports: 8080, use_spot: true}}
workdir: {workdir}
run: python3 app.py
envs: {{HELLO_TOKEN_DELAY: "{delay}"}}
"""
PROMPTS = [f"question {i}: tell me about spot instances" for i in range(16)]
MAX_TOKENS = 24


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    truncated: int = 0
    wrong: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"plain": [], "stream": []})
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        kind: str,
        latency: float,
        failed: str = "",
        truncated: bool = False,
        wrong: bool = False,
    ) -> None:
        with self.lock:
            self.sent += 1
            self.latencies[kind].append(latency)
            if failed:
                self.failed += 1
                self.errors.append(failed)
            self.truncated += truncated
            self.wrong += wrong


class Load:
    """`clients` threads, each alternating streamed and plain requests until stopped."""

    def __init__(self, endpoint: str, clients: int, expected: dict[str, str]) -> None:
        self.endpoint, self.expected = endpoint, expected
        self.tally = Tally()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]

    def start(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def finish(self) -> Tally:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        return self.tally

    def _run(self, index: int) -> None:
        client = openai.OpenAI(
            base_url=f"{self.endpoint}/v1", api_key="unused", max_retries=0, timeout=60
        )
        n = index
        while not self.stop.is_set():
            prompt = PROMPTS[n % len(PROMPTS)]
            began = time.monotonic()
            if n % 2:
                self._streamed(client, prompt, began)
            else:
                self._plain(client, prompt, began)
            n += 1

    def _plain(self, client: openai.OpenAI, prompt: str, began: float) -> None:
        try:
            answer = client.chat.completions.create(
                model="hello-1",
                messages=[{"role": "user", "content": prompt}],
                max_tokens=MAX_TOKENS,
            )
        except openai.APIError as exc:
            self.tally.add("plain", time.monotonic() - began, failed=f"plain: {exc}")
            return
        text = answer.choices[0].message.content or ""
        wrong = text.strip() != self.expected[prompt].strip()
        self.tally.add("plain", time.monotonic() - began, wrong=wrong)

    def _streamed(self, client: openai.OpenAI, prompt: str, began: float) -> None:
        text, finish = [], None
        try:
            stream = client.chat.completions.create(
                model="hello-1",
                messages=[{"role": "user", "content": prompt}],
                max_tokens=MAX_TOKENS,
                stream=True,
            )
            for chunk in stream:
                for choice in chunk.choices:
                    text.append(choice.delta.content or "")
                    finish = choice.finish_reason or finish
        except openai.APIError as exc:
            if not text:
                self.tally.add("stream", time.monotonic() - began, failed=f"stream: {exc}")
                return
        except httpx.HTTPError:
            pass  # cut mid-stream: counted as truncated below
        whole = "".join(text)
        self.tally.add(
            "stream",
            time.monotonic() - began,
            truncated=finish is None,
            wrong=finish is not None and whole.strip() != self.expected[prompt].strip(),
        )


def serve(env: Env, *args: str, timeout: float = 180) -> str:
    out = env.serve(*args, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"serve {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out.stdout


def status(env: Env) -> dict[str, Any]:
    return json.loads(serve(env, "status", NAME, "--json"))  # type: ignore[no-any-return]


def ready_spread(env: Env) -> dict[str, Any] | None:
    svc = status(env)
    ready = [r for r in svc["replicas"] if r["status"] == "READY" and r["spot"]]
    busy = [r for r in svc["replicas"] if r["status"] in ("DRAINING", "PENDING", "PROVISIONING")]
    return svc if len(ready) == 3 and not busy else None


def reference_answers(endpoint: str) -> dict[str, str]:
    client = openai.OpenAI(base_url=f"{endpoint}/v1", api_key="unused", max_retries=3)
    return {
        p: client.chat.completions.create(
            model="hello-1", messages=[{"role": "user", "content": p}], max_tokens=MAX_TOKENS
        )
        .choices[0]
        .message.content
        or ""
        for p in PROMPTS
    }


def taken_in(env: Env, zone: str) -> bool:
    return any(r["status"] == "PREEMPTED" and r["zone"] == zone for r in status(env)["replicas"])


def resume_gap(endpoint: str) -> tuple[int, float | None]:
    text = httpx.get(f"{endpoint}/-/metrics", timeout=10).text

    def value(name: str) -> float:
        found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
        return sum(float(v) for v in found)

    count = value("lb_stream_resume_gap_seconds_count")
    gap = value("lb_stream_resume_gap_seconds_sum") / count if count else None
    return int(value("lb_stream_resumes_total")), gap


def one_run(env: Env, args: argparse.Namespace, notice: float, resume: bool) -> dict[str, Any]:
    for zone in ("local-a", "local-b", "local-c"):
        serve(env, "market", "set", zone, "--unlimited", "--notice", "0")
    spec = env.home / "bench.yaml"
    workdir = REPO / "examples" / "hello"
    spec.write_text(
        YAML.format(resume=str(resume).lower(), workdir=workdir, delay=args.token_delay)
    )
    serve(env, "up", str(spec))
    svc = wait_until(lambda: ready_spread(env), "3 spot replicas READY", 120, 0.5)
    endpoint = svc["endpoint"]
    load = Load(endpoint, args.clients, reference_answers(endpoint)).start()
    time.sleep(args.warmup)
    for zone in ("local-a", "local-b"):
        serve(env, "market", "set", zone, "--spot-capacity", "0", "--notice", f"{notice:g}")
        wait_until(
            lambda z=zone: taken_in(env, z), f"the replica in {zone} taken", notice + 60, 0.5
        )
        wait_until(lambda: ready_spread(env), "3 spot replicas READY again", 120, 0.5)
        time.sleep(args.seconds_after)
    tally = load.finish()
    resumes, gap = resume_gap(endpoint)
    serve(env, "down", NAME)
    return {
        "notice_seconds": notice,
        "resume_streams": resume,
        "sent": tally.sent,
        "failed": tally.failed,
        "truncated": tally.truncated,
        "wrong_text": tally.wrong,
        "plain_p99_seconds": p99(tally.latencies["plain"]),
        "stream_p50_seconds": round(statistics.median(tally.latencies["stream"]), 3),
        "stream_p99_seconds": p99(tally.latencies["stream"]),
        "streams_resumed": resumes,
        "mean_resume_gap_ms": None if gap is None else round(gap * 1000, 1),
        "errors": tally.errors[:5],
    }


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[int(0.99 * (len(ordered) - 1))], 3)


def notice_text(seconds: float) -> str:
    return f"{seconds:g} s" if seconds else "none"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--notice", type=float, default=20.0)
    p.add_argument("--token-delay", type=float, default=0.1)
    p.add_argument("--warmup", type=float, default=10.0)
    p.add_argument("--seconds-after", type=float, default=10.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-preempt-"))
    env = Env(home=home, database_url=f"sqlite:///{home}/serve.db")
    controller = ControllerProcess(env).start()
    rows = []
    try:
        for notice, resume in (
            (0.0, False),
            (args.notice, False),
            (0.0, True),
            (args.notice, True),
        ):
            row = one_run(env, args, notice, resume)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        controller.stop()
        shutil.rmtree(home, ignore_errors=True)
    print()
    print(
        "| notice | resume | requests | failed | streams truncated | wrong text | "
        "plain p99 | stream p50 | stream p99 | streams resumed | mean resume gap |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        gap = "-" if r["mean_resume_gap_ms"] is None else f"{r['mean_resume_gap_ms']:.0f} ms"
        print(
            f"| {notice_text(r['notice_seconds'])} "
            f"| {'on' if r['resume_streams'] else 'off'} | {r['sent']} | {r['failed']} "
            f"| {r['truncated']} | {r['wrong_text']} | {r['plain_p99_seconds']} s "
            f"| {r['stream_p50_seconds']} s | {r['stream_p99_seconds']} s "
            f"| {r['streams_resumed']} | {gap} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
