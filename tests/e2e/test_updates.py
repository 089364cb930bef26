"""`serve update` as an operator uses it, on local replicas under a steady client: an update
of `service:` fields only keeps the replicas, a rolling update stays within its surge, a
blue-green one switches at once, and a broken version is rolled back without a relaunch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.load import SteadyClient
from tests.support.processes import ControllerProcess, Env, wait_until

pytestmark = pytest.mark.slow

NAME = "upd"
WORKDIR = Path(__file__).parents[2] / "examples" / "hello"
SPEC = """
name: upd
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 30, timeout_seconds: 2}}
  replicas: {replicas}
resources: {{ports: 8080}}
workdir: {workdir}
run: {run}
envs: {{HELLO_TOKEN_DELAY: "0", MODEL_NAME: {model}}}
"""
ALIVE = {"PENDING", "PROVISIONING", "STARTING", "READY", "NOT_READY"}


def write(tmp_path: Path, name: str, replicas: int = 2, model: str = "v1", run: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    text = SPEC.format(replicas=replicas, workdir=WORKDIR, run=run or "python3 app.py", model=model)
    path.write_text(text)
    return path


def status(env: Env) -> dict[str, Any]:
    out = env.serve("status", NAME, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def ready(env: Env, version: int, count: int) -> dict[str, Any] | None:
    """The service once exactly `count` replicas are READY, all of `version`, none else."""
    s = status(env)
    live = [r for r in s["replicas"] if r["status"] in ALIVE | {"SHUTTING_DOWN"}]
    good = len(live) == count and all(
        r["status"] == "READY" and r["version"] == version for r in live
    )
    return s if good else None


def up(env: Env, path: Path) -> str:
    out = env.serve("up", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    return str(wait_until(lambda: ready(env, 1, 2), "2 replicas of version 1", 60)["endpoint"])


class Models(SteadyClient):
    """A steady client that also notes which model (version) answered, in order."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint, rate=20)
        self.models: list[str] = []

    def _one(self, client: httpx.Client) -> None:
        self.sent += 1
        try:
            answer = client.post(
                f"{self.endpoint}/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "hi"}]},
            )
        except httpx.HTTPError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return
        if answer.status_code != 200:
            self.failures.append(f"{answer.status_code}: {answer.text[:200]}")
            return
        self.models.append(answer.json()["model"])


def most_alive(env: Env) -> int:
    """The most replicas alive at once, replayed from the service's events (launching
    opens a replica, shutting down, failing or a preemption ends it)."""
    url = f"{env.url}/api/v1/services/{NAME}/events"
    alive: set[int] = set()
    most = 0
    for e in httpx.get(url, params={"limit": 1000}).json():
        if e["kind"] == "replica_launching":
            alive.add(e["replica_id"])
        elif e["kind"] in ("replica_shutting_down", "replica_failed", "replica_preempted"):
            alive.discard(e["replica_id"])
        most = max(most, len(alive))
    return most


def test_an_update_of_service_fields_only_keeps_the_running_replicas(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    up(env, write(tmp_path, "v1"))
    out = env.serve("update", NAME, str(write(tmp_path, "more", replicas=3)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "in place: replicas 1, 2 keep running" in out.stdout
    after = wait_until(lambda: ready(env, 2, 3), "3 replicas of version 2", 60)
    assert sorted(r["id"] for r in after["replicas"]) == [1, 2, 3], "1 and 2 were not relaunched"


def test_a_rolling_update_stays_within_its_surge_and_loses_no_request(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    client = Models(up(env, write(tmp_path, "v1"))).start()
    try:
        out = env.serve("update", NAME, str(write(tmp_path, "v2", model="v2")))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "rolling (rolling) to version 2" in out.stdout
        wait_until(lambda: ready(env, 2, 2), "2 replicas of version 2", 90)
        wait_until(lambda: client.models[-5:] == ["v2"] * 5, "answers from version 2", 30)
    finally:
        client.stop()
    most = most_alive(env)
    assert most == 3, f"target 2 + surge 1 (a quarter of 2, at least 1): {most} at once"
    assert client.failures == [] and "v1" in client.models


def test_a_blue_green_update_switches_traffic_at_once_when_the_new_version_is_ready(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    client = Models(up(env, write(tmp_path, "v1"))).start()
    try:
        spec = write(tmp_path, "v2", model="v2")
        out = env.serve("update", NAME, str(spec), "--mode", "blue_green")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_until(lambda: ready(env, 2, 2), "2 replicas of version 2", 90)
        wait_until(lambda: client.models[-5:] == ["v2"] * 5, "answers from version 2", 30)
    finally:
        client.stop()
    switch = client.models.index("v2")
    assert set(client.models[:switch]) == {"v1"} and set(client.models[switch:]) == {"v2"}, (
        "one switch, never back"
    )
    assert most_alive(env) == 4, "the whole new version runs beside the old before the switch"
    assert client.failures == []


def test_a_broken_version_stops_the_old_one_serves_and_rollback_relaunches_nothing(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    client = Models(up(env, write(tmp_path, "v1"))).start()
    try:
        broken = write(tmp_path, "broken", model="v2", run="python3 -c 'raise SystemExit(3)'")
        assert env.serve("update", NAME, str(broken)).returncode == 0
        stuck = wait_until(
            lambda: "--rollback" in (s := status(env))["status_reason"] and s,
            "the update to stop after its failure streak",
            90,
        )
        assert stuck["status"] == "READY", "the old version keeps serving"
        out = env.serve("update", NAME, "--rollback")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "version 3 in place: replicas 1, 2 keep running" in out.stdout
        back = wait_until(lambda: ready(env, 3, 2), "version 3 on replicas 1 and 2", 30)
        sent = client.sent
        wait_until(lambda: client.sent > sent + 10, "more answers after the rollback", 30)
    finally:
        client.stop()
    assert sorted(r["id"] for r in back["replicas"] if r["status"] == "READY") == [1, 2]
    assert client.failures == [] and set(client.models) == {"v1"}
    assert env.serve("update", NAME, "--to-version", "9").returncode != 0
