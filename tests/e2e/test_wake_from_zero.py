"""A service scaled to zero answers its first request: the load balancer holds it, the
controller scales up at once, and the first replica answers it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ControllerProcess, wait_until

pytestmark = pytest.mark.slow

IDLE = """
name: idle
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 30, timeout_seconds: 2}}
  replica_policy:
    min_replicas: 0
    max_replicas: 1
    target_qps_per_replica: 1
    downscale_delay_seconds: 600
resources: {{ports: 8080}}
workdir: {workdir}
run: python3 app.py
envs: {{HELLO_TOKEN_DELAY: "0"}}
"""


def test_an_idle_service_at_zero_replicas_answers_its_first_request(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    spec = tmp_path / "idle.yaml"
    spec.write_text(IDLE.format(workdir=Path(__file__).parents[2] / "examples" / "hello"))
    out = env.serve("up", str(spec), "--detach")
    assert out.returncode == 0, out.stdout + out.stderr

    def idle() -> dict | None:
        svc = json.loads(env.serve("status", "idle", "--json").stdout)
        return svc if svc["status"] == "NO_REPLICA" and svc["endpoint"] else None

    svc = wait_until(idle, "the service idle at zero replicas with its endpoint", 30)
    assert svc["replicas"] == [] and svc["target_replicas"] == 0
    wait_until(lambda: _lb_up(svc["endpoint"]), "the load balancer to listen", 30)

    answer = httpx.post(
        f"{svc['endpoint']}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "wake up"}]},
        timeout=90,
    )
    assert answer.status_code == 200, answer.text
    assert "wake up" in answer.json()["choices"][0]["message"]["content"]
    after = json.loads(env.serve("status", "idle", "--json").stdout)
    assert after["target_replicas"] == 1 and after["ready_replicas"] == 1


def _lb_up(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/-/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
