"""What keeps working while a part is down: the load balancer without its controller, the
controller without its database (which then launches nothing)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.processes import ControllerProcess, Env, wait_until
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

HELLO = Path(__file__).parents[2] / "examples" / "hello"
YAML = f"""
name: out
service: {{readiness_probe: /health, replicas: 2}}
resources: {{ports: 8080}}
workdir: {HELLO}
run: python3 app.py
envs: {{HELLO_TOKEN_DELAY: "0"}}
"""


def up(env: Env, tmp_path: Path) -> str:
    spec = tmp_path / "out.yaml"
    spec.write_text(YAML)
    out = env.serve("up", str(spec))
    assert out.returncode == 0, out.stderr
    return str(env.status("out")["endpoint"])  # type: ignore[index]


def instances(env: Env) -> list[dict[str, Any]]:
    folder = env.home / "local" / "instances"
    return [json.loads(p.read_text()) for p in folder.glob("*.json")]


def replica_answering(endpoint: str) -> str:
    resp = httpx.post(f"{endpoint}/v1/chat/completions", json={"messages": []}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-replica-id"]


def test_load_balancer_serves_while_the_controller_is_down_and_resyncs_after(
    sqlite_env: Env, tmp_path: Path
) -> None:
    controller = ControllerProcess(sqlite_env).start()
    endpoint = up(sqlite_env, tmp_path)
    controller.kill()

    answered = {replica_answering(endpoint) for _ in range(20)}
    assert answered == {"1", "2"}, "the last known replicas keep serving"
    dead = next(i for i in instances(sqlite_env) if i["replica_id"] == 1)
    os.killpg(dead["pid"], signal.SIGKILL)
    assert {replica_answering(endpoint) for _ in range(20)} == {"2"}, "retries skip the dead one"

    ControllerProcess(sqlite_env).start()
    wait_until(
        lambda: "3" in {replica_answering(endpoint) for _ in range(6)},
        "the load balancer to learn the replacement from the restarted controller",
        30,
    )


def test_database_outage_answers_503_and_launches_nothing_until_it_returns(
    serve_env: Env, tmp_path: Path
) -> None:
    url = make_url(serve_env.database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("the outage is made between the controller and a Postgres server")
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    serve_env.database_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )
    try:
        ControllerProcess(serve_env).start()
        endpoint = up(serve_env, tmp_path)
        wait_until(
            lambda: {replica_answering(endpoint) for _ in range(10)} == {"1", "2"},
            "the load balancer to know both replicas before the outage",
        )
        proxy.cut()
        resp = httpx.get(f"{serve_env.url}/api/v1/services/out", timeout=30)
        assert resp.status_code == 503
        assert resp.json()["error"] == "database_unavailable"

        victim = next(i for i in instances(serve_env) if i["replica_id"] == 1)
        os.killpg(victim["pid"], signal.SIGKILL)
        attempts = schedule_attempts(serve_env)
        wait_until(
            lambda: schedule_attempts(serve_env) >= attempts + 8,
            "eight ticks of the schedule during the outage",
            60,
        )  # a controller that could write would have relaunched by now
        assert len(instances(serve_env)) == 2, "nothing may launch while state cannot be written"
        assert replica_answering(endpoint) == "2"

        proxy.restore()
        wait_until(lambda: _ready(serve_env) == 2, "the replacement once the database is back", 60)
        running = [i for i in instances(serve_env) if i["state"] == "running"]
        assert len(running) == 2
    finally:
        proxy.close()


def schedule_attempts(env: Env) -> int:
    """Ticks the controller's schedule has started (its /healthz says, even when degraded)."""
    return int(httpx.get(f"{env.url}/healthz", timeout=30).json()["ticks"]["attempts"])


def _ready(env: Env) -> int:
    try:
        svc = env.status("out")
    except (httpx.HTTPError, json.JSONDecodeError):
        return 0
    return sum(r["status"] == "READY" for r in svc["replicas"]) if svc else 0
