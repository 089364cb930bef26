"""`serve down NAME --replica-id N [--purge]` on local replicas: the replica ends the way the
controller ends any, and the service replaces it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import Env, read_json, wait_until

ONE = """
service:
  readiness_probe: {path: /health, initial_delay_seconds: 60}
  replicas: 1
resources:
  ports: 8080
envs:
  MODEL_NAME: hello-1
workdir: {workdir}
run: python3 app.py
"""


def one_ready_replica(env: Env, tmp_path: Path) -> int:
    spec = tmp_path / "one.yaml"
    spec.write_text(ONE.replace("{workdir}", str(Path("examples/hello").resolve())))
    up = env.serve("up", str(spec), "-n", "one")
    assert up.returncode == 0, up.stdout + up.stderr
    (replica,) = replicas(env)
    assert replica["status"] == "READY"
    return int(replica["id"])


def replicas(env: Env) -> list[dict[str, Any]]:
    out = env.serve("status", "one", "--json")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout)["replicas"])


def replaced(env: Env, gone: int) -> bool:
    now = replicas(env)
    return [r["status"] for r in now] == ["READY"] and now[0]["id"] != gone


def events(env: Env) -> list[dict[str, Any]]:
    return list(httpx.get(f"{env.url}/api/v1/services/one/events", timeout=10).json())


def instance_ids(env: Env) -> set[int]:
    """Replica ids of the local instances still on disk."""
    return {read_json(p)["replica_id"] for p in (env.home / "local" / "instances").glob("*.json")}


@pytest.mark.slow
def test_one_replica_ends_and_a_replacement_gets_ready(serve_env: Env, tmp_path: Path) -> None:
    env = serve_env
    victim = one_ready_replica(env, tmp_path)
    out = env.serve("down", "one", "--replica-id", str(victim))
    assert out.returncode == 0, out.stderr
    assert f"Replica {victim} of one is shutting down" in out.stdout
    assert f"Replica {victim} of one is terminated" in out.stdout
    assert victim not in [r["id"] for r in replicas(env)]
    assert victim not in instance_ids(env)
    wait_until(lambda: replaced(env, victim), "a replacement replica to be READY", 90, 0.5)

    said = [e for e in events(env) if e["replica_id"] == victim]
    reason = f"requested by the operator (serve down one --replica-id {victim})"
    assert any(e["kind"] == "replica_shutting_down" and reason in e["message"] for e in said)
    assert any(e["kind"] == "replica_terminated" for e in said)


@pytest.mark.slow
def test_purge_forgets_the_replica_at_once_and_says_how_to_find_its_instance(
    sqlite_env: Env, tmp_path: Path
) -> None:
    env = sqlite_env
    victim = one_ready_replica(env, tmp_path)
    out = env.serve("down", "one", "--replica-id", str(victim), "--purge")
    assert out.returncode == 0, out.stderr
    assert f"Replica {victim} of one is forgotten: its instance" in out.stdout
    assert f"serve-service=one serve-replica-id={victim} serve-launch-token=" in out.stdout
    assert victim not in [r["id"] for r in replicas(env)]
    assert victim not in instance_ids(env)
    assert any(e["kind"] == "replica_purged" and e["replica_id"] == victim for e in events(env))
    wait_until(lambda: replaced(env, victim), "a replacement replica to be READY", 90, 0.5)
