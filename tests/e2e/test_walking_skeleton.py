"""A user's first session: `serve up`, ask it things, lose a replica, `serve down`."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.processes import Env, processes_of, read_json, wait_until

HELLO = "examples/hello/service.yaml"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def status_json(env: Env, name: str) -> dict:
    out = env.serve("status", name, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def ready_count(env: Env, name: str) -> int:
    return sum(1 for r in status_json(env, name)["replicas"] if r["status"] == "READY")


@pytest.mark.slow
def test_up_answer_survive_a_dead_replica_and_down(serve_env: Env) -> None:
    env = serve_env
    up = env.serve("up", HELLO, "-n", "hello")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "READY" in up.stdout

    svc = status_json(env, "hello")
    assert svc["status"] == "READY"
    assert {r["zone"] for r in svc["replicas"]} <= {"local-a", "local-b", "local-c"}
    assert all(r["cloud"] == "local" and r["spot"] is False for r in svc["replicas"])
    endpoint = svc["endpoint"]
    wait_until(lambda: _answers(endpoint), "the endpoint to answer")

    answer = httpx.post(f"{endpoint}/v1/chat/completions", json=CHAT, timeout=10).json()
    assert answer["choices"][0]["message"]["content"].startswith("Hello! You said:")

    arrivals = _stream_arrival_times(endpoint)
    assert len(arrivals) >= 5, "tokens should arrive as separate events"
    assert arrivals[-1] - arrivals[0] > 0.1, "tokens arrived all at once, not streamed"

    victim = svc["replicas"][0]
    _kill_replica(env, victim["id"])
    wait_until(lambda: _replaced(env, victim["id"]), "a replacement replica to be READY", 60)
    for _ in range(20):
        assert (
            httpx.post(f"{endpoint}/v1/chat/completions", json=CHAT, timeout=10).status_code == 200
        )

    logs = env.serve("logs", "hello", "--replica", str(svc["replicas"][1]["id"]), "--no-follow")
    assert logs.returncode == 0 and "serving hello-1" in logs.stdout

    down = env.serve("down", "hello")
    assert down.returncode == 0, down.stderr
    gone = env.serve("status", "hello", "--json")
    assert gone.returncode != 0 and "no service named hello" in gone.stderr
    assert "hello" not in env.serve("status").stdout
    assert wait_until(lambda: not _service_processes(env), "replica and LB processes to exit", 20)
    assert not list((env.home / "local" / "instances").glob("*.json"))
    engine = create_engine(env.database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM services")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM replicas")).scalar() == 0
    engine.dispose()


def _answers(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stream_arrival_times(endpoint: str) -> list[float]:
    times = []
    body = {**CHAT, "stream": True}
    with httpx.stream("POST", f"{endpoint}/v1/chat/completions", json=body, timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                times.append(time.monotonic())
    return times


def _kill_replica(env: Env, replica_id: int) -> None:
    for path in (env.home / "local" / "instances").glob("*.json"):
        record = read_json(path)
        if record["replica_id"] == replica_id:
            os.killpg(record["pid"], signal.SIGKILL)
            return
    raise AssertionError(f"no local instance for replica {replica_id}")


def _replaced(env: Env, dead_id: int) -> bool:
    svc = status_json(env, "hello")
    ready = [r for r in svc["replicas"] if r["status"] == "READY"]
    return len(ready) == 2 and all(r["id"] != dead_id for r in ready)


def _service_processes(env: Env) -> list[str]:
    return [p for p in processes_of(env.home) if "controller.daemon" not in p]
