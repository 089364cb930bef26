"""A service served by two load balancer processes that follow the controller from outside
(SERVE_START_LOAD_BALANCERS=0), as they would from other machines behind a cloud load
balancer or DNS: when one dies the other keeps serving, without a failed request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.load_balancer.conftest import Proc, ProcessFactory
from tests.support.processes import ControllerProcess, Env, processes_of, wait_until

pytestmark = pytest.mark.slow

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
YAML = f"""
name: offhost
service: {{readiness_probe: /health, replicas: 2}}
resources: {{ports: 8080}}
workdir: {HELLO}
run: python3 app.py
envs: {{HELLO_TOKEN_DELAY: "0"}}
"""
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
REQUESTS_AFTER_KILL = 60


@pytest.fixture
def controller_without_lbs(sqlite_env: Env) -> Iterator[ControllerProcess]:
    sqlite_env.extra["SERVE_START_LOAD_BALANCERS"] = "0"
    proc = ControllerProcess(sqlite_env).start()
    yield proc
    proc.kill()


def ready_replicas(env: Env, name: str) -> int:
    status = env.status(name) or {"replicas": []}
    return sum(1 for r in status["replicas"] if r["status"] == "READY")


def follow(procs: ProcessFactory, env: Env, name: str) -> Proc:
    return procs.lb(
        *("--controller-url", env.url, "--service", name, "--sync-interval", "0.5"),
        *("--token-file", str(env.home / "token")),
        wait_ready=2,
    )


def last_sync(lb: Proc) -> float:
    text = httpx.get(f"{lb.url}/-/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith("lb_last_sync_success_timestamp"))
    return float(line.rsplit(" ", 1)[1])


class Client:
    """Sends requests one after another to one URL until told to stop (bounded: at most
    `limit`), counting answers by status; a connection error counts as a failure."""

    def __init__(self, url: str, limit: int = 2000) -> None:
        self.url, self.limit = url, limit
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set() and self.ok + len(self.failures) < self.limit:
                try:
                    status = http.post(f"{self.url}/v1/chat/completions", json=CHAT).status_code
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"HTTP {status}")

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_two_load_balancers_follow_the_controller_and_one_survives_the_other(
    controller_without_lbs: ControllerProcess, lb_procs: ProcessFactory, tmp_path: Path
) -> None:
    env = controller_without_lbs.env
    spec = tmp_path / "offhost.yaml"
    spec.write_text(YAML)
    up = env.serve("up", str(spec))
    assert up.returncode == 0, up.stdout + up.stderr
    wait_until(lambda: ready_replicas(env, "offhost") == 2, "two READY replicas", 60)
    assert not [p for p in processes_of(env.home) if "-m load_balancer" in p], (
        "the controller started a load balancer of its own"
    )

    first, second = follow(lb_procs, env, "offhost"), follow(lb_procs, env, "offhost")
    synced_after = time.time()
    wait_until(
        lambda: min(last_sync(first), last_sync(second)) >= synced_after,
        "both load balancers to sync again (the gauge the alert reads)",
    )
    for lb in (first, second):
        for _ in range(5):
            answer = httpx.post(f"{lb.url}/v1/chat/completions", json=CHAT, timeout=10)
            assert answer.status_code == 200

    with Client(second.url) as client:
        wait_until(lambda: client.ok >= 10, "the client to be served through the survivor")
        first.kill()
        served_before_kill = client.ok
        wait_until(
            lambda: client.ok >= served_before_kill + REQUESTS_AFTER_KILL or client.failures,
            f"{REQUESTS_AFTER_KILL} more answers through the survivor",
            60,
        )
    assert client.failures == [], client.failures[:5]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{first.url}/-/healthz", timeout=2)  # what a health check sees
    assert httpx.get(f"{second.url}/-/healthz", timeout=2).json()["ready_replicas"] == 2
