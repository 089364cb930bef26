"""Two controller processes on one Postgres database: exactly one acts; when it dies the
other takes over within a bounded time, and nothing is launched twice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.processes import ControllerProcess, Env, free_port, wait_until

pytestmark = pytest.mark.slow

HELLO = Path(__file__).parents[2] / "examples" / "hello"
YAML = f"""
name: ha
service: {{readiness_probe: /health, replicas: 2}}
resources: {{ports: 8080}}
workdir: {HELLO}
run: python3 app.py
envs: {{HELLO_TOKEN_DELAY: "0"}}
"""


@pytest.fixture
def pair(db_url: str, tmp_path: Path) -> Iterator[tuple[ControllerProcess, ControllerProcess]]:
    if not db_url.startswith("postgresql"):
        pytest.skip("several controllers share a Postgres database (SQLite is one machine's)")
    home = tmp_path / "home"
    home.mkdir()
    ports = (free_port(), free_port())
    peers = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    envs = [
        Env(home=home, database_url=db_url, port=p, extra={"SERVE_CONTROLLER_PEERS": peers})
        for p in ports
    ]
    envs[1].lb_port_start = envs[0].lb_port_start
    first = ControllerProcess(envs[0]).start()
    wait_until(lambda: role(envs[0]) == "leader", "the first controller to lead")
    second = ControllerProcess(envs[1]).start()
    yield first, second
    first.kill()
    second.kill()
    from tests.support.processes import kill_everything_of

    kill_everything_of(home)


def role(env: Env) -> str | None:
    try:
        return str(httpx.get(f"{env.url}/api/v1/controller", timeout=10).json()["role"])
    except httpx.HTTPError:
        return None


def ticks(env: Env) -> dict[str, int]:
    """The controller's schedule counters (attempts, leading, service_ticks, ...)."""
    return dict(httpx.get(f"{env.url}/healthz", timeout=10).json()["ticks"])


def wait_for_ticks(env: Env, counter: str, more: int) -> None:
    """Wait until `counter` has grown by `more`: ticks observed, not hoped for."""
    start = ticks(env)[counter]
    wait_until(lambda: ticks(env)[counter] >= start + more, f"{more} more {counter} ticks", 30)


def instances(env: Env) -> list[dict[str, Any]]:
    folder = env.home / "local" / "instances"
    return [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []


def test_one_leader_acts_and_the_standby_takes_over_when_it_dies(
    pair: tuple[ControllerProcess, ControllerProcess], tmp_path: Path
) -> None:
    leader, standby = pair
    spec = tmp_path / "ha.yaml"
    spec.write_text(YAML)
    assert standby.env.serve("up", str(spec)).returncode == 0, "writes work on a standby too"
    assert role(leader.env) == "leader" and role(standby.env) == "standby"
    wait_until(
        lambda: len([i for i in instances(leader.env) if i["state"] == "running"]) == 2,
        "the leader to launch both replicas",
    )
    wait_for_ticks(standby.env, "attempts", 4)  # the standby looked, several times
    wait_for_ticks(leader.env, "service_ticks", 4)
    assert role(standby.env) == "standby"
    assert len([i for i in instances(leader.env) if i["state"] == "running"]) == 2
    endpoint = leader.env.status("ha")["endpoint"]  # type: ignore[index]

    leader.kill()
    began = time.monotonic()
    wait_until(lambda: role(standby.env) == "leader", "the standby to take over", 20)
    takeover = time.monotonic() - began

    victim = instances(standby.env)[0]
    import os
    import signal

    os.killpg(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:
        """Two READY replicas, the victim not among them, read from ONE status snapshot
        (two reads could see the victim READY in the first and gone in the second)."""
        replicas = standby.env.status("ha")["replicas"]  # type: ignore[index]
        ready = {r["id"] for r in replicas if r["status"] == "READY"}
        return len(ready) == 2 and victim["replica_id"] not in ready

    wait_until(replaced, "the new leader to replace the dead replica", 30)
    running = [i for i in instances(standby.env) if i["state"] == "running"]
    assert len(running) == 2, "nothing may be launched twice"
    assert len({i["replica_id"] for i in running}) == 2
    assert httpx.post(f"{endpoint}/v1/chat/completions", json={"messages": []}).status_code == 200
    assert takeover < 10


def test_a_deposed_leader_launches_nothing_more(db_url: str, tmp_path: Path) -> None:
    """Fencing: a launch is held right before the cloud call; the leader loses its lock
    (its lock connection is cut, as a network partition would); the standby takes over.
    When the held launch goes on, it must see that it no longer leads and launch nothing."""
    if not db_url.startswith("postgresql"):
        pytest.skip("the lock connection is cut on the Postgres server")
    home = tmp_path / "home"
    home.mkdir()
    release = tmp_path / "release"
    ports = (free_port(), free_port())
    peers = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    held = {
        "SERVE_FAILPOINT": "launch.before_provider:hold",
        "SERVE_FAILPOINT_RELEASE": str(release),
    }
    first = Env(
        home=home,
        database_url=db_url,
        port=ports[0],
        extra={"SERVE_CONTROLLER_PEERS": peers, **held},
    )
    second = Env(
        home=home, database_url=db_url, port=ports[1], extra={"SERVE_CONTROLLER_PEERS": peers}
    )
    second.lb_port_start = first.lb_port_start
    a = ControllerProcess(first).start()
    wait_until(lambda: role(first) == "leader", "the first controller to lead")
    b = ControllerProcess(second).start()
    try:
        spec = tmp_path / "ha.yaml"
        spec.write_text(YAML.replace("replicas: 2", "replicas: 1"))
        assert first.serve("up", str(spec), "--detach").returncode == 0
        wait_until(lambda: _status(second, "PENDING"), "the held launch's intent")

        def deposed() -> bool:
            """Cut the first controller's lock connection until the second leads (the
            first may win the lock back in the meantime: it is cut again then)."""
            if role(second) == "leader":
                return True
            _cut_lock_connection(db_url, a)
            return False

        wait_until(deposed, "the standby to take over", 30, every=0.5)
        release.touch()

        log = home / "logs" / "controller.log"
        wait_until(
            lambda: "not the leader any more" in log.read_text(errors="replace"),
            "the deposed leader's launch to stop at the fence",
            30,
        )
        wait_until(lambda: _status(second, "READY"), "the new leader's replacement READY", 60)
        svc = second.status("ha")
        assert svc is not None
        launched = {i["replica_id"] for i in instances(second)}
        (ready_id,) = [r["id"] for r in svc["replicas"] if r["status"] == "READY"]
        assert launched == {ready_id}, "only the new leader's replica has an instance"
        assert 1 not in launched, "the held launch of replica 1 never reached the cloud"
    finally:
        release.touch()
        a.kill()
        b.kill()
        from tests.support.processes import kill_everything_of

        kill_everything_of(home)


def _status(env: Env, status: str) -> bool:
    try:
        svc = env.status("ha")
    except httpx.HTTPError:
        return False
    return bool(svc and any(r["status"] == status for r in svc["replicas"]))


def _cut_lock_connection(db_url: str, leader: ControllerProcess) -> None:
    """End the leader's lock connection on the server (it is named after its pid)."""
    assert leader.proc is not None
    engine = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE :name"
            ),
            {"name": f"spotserve-leader-%-{leader.proc.pid}"},
        ).all()
    engine.dispose()


def test_a_second_controller_on_the_same_sqlite_file_stands_by(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    first = ControllerProcess(Env(home=home, database_url=url)).start()
    second = ControllerProcess(Env(home=home, database_url=url)).start()
    try:
        wait_until(lambda: role(first.env) == "leader", "the first to lead")
        assert role(second.env) == "standby"
        first.kill()
        wait_until(lambda: role(second.env) == "leader", "the second to take over", 10)
    finally:
        first.kill()
        second.kill()
