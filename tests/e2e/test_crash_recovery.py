"""kill -9 the controller at each step of its work, restart it, and check that the service
converges, that no instance runs without a replica row, and that no live row points at
nothing. The controller dies at exact steps through failpoints (`SERVE_FAILPOINT`), by
SIGKILL to itself, as an operator's `kill -9` would."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.support.moto_server import aws_env, moto_server, tagged_instances
from tests.support.processes import ControllerProcess, Env, processes_of, wait_until

pytestmark = pytest.mark.slow

HELLO = Path(__file__).parents[2] / "examples" / "hello"
YAML = """
name: crash
service:
  readiness_probe: {path: /health, initial_delay_seconds: 30, timeout_seconds: 2}
  replicas: REPLICAS
resources: {ports: 8080}
workdir: WORKDIR
run: python3 app.py
envs: {VERSION: "VERSION_TAG"}
"""
ALIVE = {"PENDING", "PROVISIONING", "STARTING", "READY", "NOT_READY"}


def write_spec(tmp_path: Path, replicas: int, version: int = 1) -> Path:
    path = tmp_path / f"crash-{replicas}-{version}.yaml"
    text = YAML.replace("REPLICAS", str(replicas)).replace("WORKDIR", str(HELLO))
    path.write_text(text.replace("VERSION_TAG", str(version)))
    return path


def start(env: Env, failpoint: str | None = None) -> ControllerProcess:
    env.extra.pop("SERVE_FAILPOINT", None)
    if failpoint:
        env.extra["SERVE_FAILPOINT"] = failpoint
    return ControllerProcess(env).start()


def died(proc: ControllerProcess) -> bool:
    assert proc.proc is not None
    return proc.proc.poll() is not None


def instances(env: Env) -> list[dict[str, Any]]:
    folder = env.home / "local" / "instances"
    return [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []


def running(env: Env) -> list[dict[str, Any]]:
    return [i for i in instances(env) if i["state"] == "running"]


def consistent(env: Env, target: int) -> bool:
    """Converged, and every running instance is owned by a row and vice versa."""
    svc = env.status("crash")
    if svc is None:
        return False
    rows = {r["id"]: r for r in svc["replicas"]}
    live_rows = {i for i, r in rows.items() if r["status"] in ALIVE}
    ready = {i for i, r in rows.items() if r["status"] == "READY"}
    run_ids = [i["replica_id"] for i in running(env)]
    return len(ready) == target and sorted(run_ids) == sorted(ready) and live_rows == ready


def assert_converges(env: Env, target: int) -> None:
    wait_until(lambda: consistent(env, target), f"{target} READY replicas, one instance each", 60)


@pytest.mark.parametrize(
    "point", ["launch.before_provider", "launch.after_provider", "launch.recorded"]
)
def test_crash_during_scale_up_converges_without_leaks_or_duplicates(
    sqlite_env: Env, tmp_path: Path, point: str
) -> None:
    proc = start(sqlite_env, point)
    out = sqlite_env.serve("up", str(write_spec(tmp_path, 2)), "--detach")
    assert out.returncode == 0, out.stderr
    wait_until(lambda: died(proc), f"the controller to die at {point}", 30)

    start(sqlite_env)
    assert_converges(sqlite_env, 2)
    svc = sqlite_env.status("crash")
    assert svc is not None
    if point == "launch.after_provider":
        kinds = _events(sqlite_env)
        assert "replica_adopted" in kinds, "the instance made before the crash is adopted"


@pytest.mark.parametrize("point", ["terminate.before_provider", "terminate.after_provider"])
def test_crash_during_scale_down_converges(sqlite_env: Env, tmp_path: Path, point: str) -> None:
    proc = start(sqlite_env)
    assert sqlite_env.serve("up", str(write_spec(tmp_path, 2))).returncode == 0
    proc.kill()
    proc = start(sqlite_env, point)
    out = sqlite_env.serve("update", "crash", str(write_spec(tmp_path, 1, version=2)))
    assert out.returncode == 0, out.stderr
    wait_until(lambda: died(proc), f"the controller to die at {point}", 60)

    start(sqlite_env)
    assert_converges(sqlite_env, 1)
    wait_until(
        lambda: {r["version"] for r in sqlite_env.status("crash")["replicas"]} == {2},  # type: ignore[index]
        "the old version's rows to go once their terminations are confirmed",
    )


def test_crash_during_serve_down_still_takes_everything_down(
    sqlite_env: Env, tmp_path: Path
) -> None:
    proc = start(sqlite_env)
    assert sqlite_env.serve("up", str(write_spec(tmp_path, 2))).returncode == 0
    proc.kill()
    proc = start(sqlite_env, "terminate.after_provider")
    assert sqlite_env.serve("down", "crash", "--detach").returncode == 0
    wait_until(lambda: died(proc), "the controller to die mid-teardown", 30)
    assert _service_rows(sqlite_env) == 1, "the crash interrupted the teardown"

    start(sqlite_env)
    wait_until(lambda: sqlite_env.status("crash") is None, "the service to be gone", 60)
    assert running(sqlite_env) == []
    assert instances(sqlite_env) == []


def test_serve_down_accepted_before_the_next_leader_ticks_leaks_nothing(
    sqlite_env: Env, tmp_path: Path
) -> None:
    """The controller dies after the cloud made an instance and before the row knew it;
    `serve down` is accepted by a controller that does not lead yet (the test holds the
    leader lock); when it leads, its first act is the teardown. The instance must go too."""
    proc = start(sqlite_env, "launch.after_provider")
    assert sqlite_env.serve("up", str(write_spec(tmp_path, 1)), "--detach").returncode == 0
    wait_until(lambda: died(proc), "the controller to die after the cloud call", 30)
    assert running(sqlite_env), "the crash left a running instance no row knows"

    with held_leader_lock(sqlite_env):
        standby = start(sqlite_env)
        assert _role(sqlite_env) == "standby"
        assert sqlite_env.serve("down", "crash", "--detach").returncode == 0
    wait_until(lambda: sqlite_env.status("crash") is None, "the service to be gone", 60)
    assert instances(sqlite_env) == [], "no instance of the service may outlive it"
    assert not [p for p in processes_of(sqlite_env.home) if "app.py" in p]
    standby.kill()


@contextlib.contextmanager
def held_leader_lock(env: Env) -> Iterator[None]:
    """Hold the SQLite installation's leader lock (a flock beside the database file)."""
    path = Path(make_url(env.database_url).database or "").with_suffix(".leader")
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _role(env: Env) -> str:
    import httpx

    return str(httpx.get(f"{env.url}/healthz", timeout=10).json()["role"])


def test_restart_does_not_relaunch_running_replicas(sqlite_env: Env, tmp_path: Path) -> None:
    proc = start(sqlite_env)
    assert sqlite_env.serve("up", str(write_spec(tmp_path, 2))).returncode == 0
    before = {i["instance_id"]: i["pid"] for i in running(sqlite_env)}
    proc.kill()
    start(sqlite_env)
    assert_converges(sqlite_env, 2)
    after = {i["instance_id"]: i["pid"] for i in running(sqlite_env)}
    assert after == before
    assert _events(sqlite_env).count("replica_launching") == 2


def _events(env: Env) -> list[str]:
    import httpx

    return [
        e["kind"]
        for e in httpx.get(f"{env.url}/api/v1/services/crash/events", params={"limit": 1000}).json()
    ]


def _service_rows(env: Env) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(env.database_url)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT count(*) FROM services")).scalar_one())
    engine.dispose()
    return count


GPU = """
name: crash
service:
  readiness_probe: {path: /health, initial_delay_seconds: 600}
  replicas: 2
resources: {cloud: aws, region: us-east-1, accelerators: T4:1, ports: 8080}
run: python3 -m http.server 8080
"""


@pytest.fixture
def moto(sqlite_env: Env, tmp_path: Path) -> Iterator[str]:
    with moto_server() as url:
        sqlite_env.extra.update(aws_env(url, tmp_path))
        yield url


def aws_consistent(env: Env, url: str, target: int) -> bool:
    svc = env.status("crash")
    if svc is None:
        return False
    live_rows = {r["id"]: r for r in svc["replicas"] if r["status"] in ALIVE}
    instances = tagged_instances(url, "crash", ("pending", "running"))
    by_replica = {int(_tag(i, "serve-replica-id")) for i in instances}
    return len(live_rows) == target and len(instances) == target and by_replica == set(live_rows)


@pytest.mark.parametrize("point", ["launch.before_provider", "launch.after_provider"])
def test_crash_during_scale_up_on_aws_leaves_no_untracked_instance(
    sqlite_env: Env, moto: str, tmp_path: Path, point: str
) -> None:
    spec = tmp_path / "gpu.yaml"
    spec.write_text(GPU)
    proc = start(sqlite_env, point)
    assert sqlite_env.serve("up", str(spec), "--detach").returncode == 0
    wait_until(lambda: died(proc), f"the controller to die at {point}", 60)
    start(sqlite_env)
    wait_until(lambda: aws_consistent(sqlite_env, moto, 2), "2 tracked instances on moto", 60)


def test_crash_during_serve_down_on_aws_terminates_everything(
    sqlite_env: Env, moto: str, tmp_path: Path
) -> None:
    spec = tmp_path / "gpu.yaml"
    spec.write_text(GPU)
    proc = start(sqlite_env)
    assert sqlite_env.serve("up", str(spec), "--detach").returncode == 0
    wait_until(lambda: aws_consistent(sqlite_env, moto, 2), "2 instances on moto", 60)
    proc.kill()
    proc = start(sqlite_env, "terminate.after_provider")
    assert sqlite_env.serve("down", "crash", "--detach").returncode == 0
    wait_until(lambda: died(proc), "the controller to die mid-teardown", 60)
    start(sqlite_env)
    wait_until(lambda: sqlite_env.status("crash") is None, "the service to be gone", 60)
    assert tagged_instances(moto, "crash", ("pending", "running")) == []


def _tag(instance: dict[str, Any], key: str) -> str:
    return next(t["Value"] for t in instance.get("Tags", []) if t["Key"] == key)
