"""Request rate drives the replica count through the load balancer's reports."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.load import SteadyClient, StreamingClient
from tests.support.processes import ControllerProcess, Env, wait_until

pytestmark = pytest.mark.slow

UP, DOWN = 3.0, 6.0
YAML = f"""
name: auto
service:
  readiness_probe: /health
  replica_policy:
    min_replicas: 1
    max_replicas: 3
    target_qps_per_replica: 2
    upscale_delay_seconds: {UP}
    downscale_delay_seconds: {DOWN}
resources: {{ports: 8080}}
workdir: {Path(__file__).parents[2] / "examples" / "hello"}
run: python3 app.py
envs: {{HELLO_TOKEN_DELAY: "0"}}
"""


@pytest.fixture
def scaling_controller(sqlite_env: Env) -> Iterator[ControllerProcess]:
    sqlite_env.extra["SERVE_QPS_WINDOW_SECONDS"] = "2"
    proc = ControllerProcess(sqlite_env).start()
    yield proc
    proc.kill()


def target(env: Env) -> int:
    return int(json.loads(env.serve("status", "auto", "--json").stdout)["target_replicas"])


def scale_event(env: Env, kind: str) -> dict:
    found = [
        e
        for e in httpx.get(f"{env.url}/api/v1/services/auto/events", params={"limit": 1000}).json()
        if e["kind"] == kind
    ]
    return found[-1] if found else {}


def test_load_scales_up_after_the_upscale_delay_and_down_after_the_downscale_delay(
    scaling_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = scaling_controller.env
    spec = tmp_path / "auto.yaml"
    spec.write_text(YAML)
    assert env.serve("up", str(spec)).returncode == 0
    endpoint = json.loads(env.serve("status", "auto", "--json").stdout)["endpoint"]
    assert target(env) == 1

    client = SteadyClient(endpoint, rate=10).start()
    load_began = time.time()
    try:
        wait_until(lambda: target(env) == 3, "the target to reach max_replicas", 40)
        up = scale_event(env, "scale_up")
        wait_until(
            lambda: (
                sum(
                    r["status"] == "READY"
                    for r in json.loads(env.serve("status", "auto", "--json").stdout)["replicas"]
                )
                == 3
            ),
            "three READY replicas",
            30,
        )
    finally:
        client.stop()
    load_ended = time.time()
    assert up["at"] - load_began >= UP - 0.5, "scaled up before the upscale delay"
    assert up["data"]["qps"] > 2

    wait_until(lambda: target(env) == 1, "the target to fall back to min_replicas", 40)
    down = scale_event(env, "scale_down")
    assert down["at"] - load_ended >= DOWN - 0.5, "scaled down before the downscale delay"
    assert client.failures == []


CONCURRENCY = f"""
name: auto
service:
  readiness_probe: /health
  replica_policy:
    min_replicas: 1
    max_replicas: 3
    target_qps_per_replica: 100
    target_concurrency_per_replica: 1
    upscale_delay_seconds: 1
    downscale_delay_seconds: 600
resources: {{ports: 8080}}
workdir: {Path(__file__).parents[2] / "examples" / "hello"}
run: python3 app.py
envs: {{HELLO_TOKEN_DELAY: "0.3"}}
"""


def test_long_requests_at_a_low_rate_scale_on_concurrency_not_rate(
    scaling_controller: ControllerProcess, tmp_path: Path
) -> None:
    """Four clients each always amid a ~5 s streamed answer: about 1 request/s, which
    `target_qps_per_replica: 100` would serve with one replica, but 4 in flight, which
    `target_concurrency_per_replica: 1` spreads over max_replicas (3)."""
    env = scaling_controller.env
    spec = tmp_path / "auto.yaml"
    spec.write_text(CONCURRENCY)
    assert env.serve("up", str(spec)).returncode == 0
    endpoint = json.loads(env.serve("status", "auto", "--json").stdout)["endpoint"]
    clients = [StreamingClient(endpoint, rate=100).start() for _ in range(4)]
    try:
        wait_until(lambda: target(env) == 3, "the target to follow the requests in flight", 60)
    finally:
        for c in clients:
            c.stop()
    up = scale_event(env, "scale_up")
    assert up["data"]["in_flight"] >= 2 and up["data"]["qps"] < 100, up
    assert all(c.failures == [] for c in clients)
