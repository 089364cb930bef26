"""SpotHedge in the running controller, on the local simulated spot market.

Real processes throughout: the controller daemon, the load balancer, replicas; the market
is changed with `serve market set` as an operator would. Time is compressed by settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.load import SteadyClient
from tests.support.processes import ControllerProcess, Env, wait_until

pytestmark = pytest.mark.slow

SPOT = """
name: live
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 30, timeout_seconds: 2}}
  replica_policy:
    min_replicas: 2
    max_replicas: 2
    num_overprovision: 1
    dynamic_ondemand_fallback: true
    spot_placer: dynamic_fallback
    base_ondemand_fallback_replicas: {base}
resources: {{ports: 8080, use_spot: true}}
workdir: {workdir}
run: python3 app.py
envs: {{HELLO_TOKEN_DELAY: "0"}}
"""


def spot_yaml(tmp_path: Path, base: int = 0) -> Path:
    path = tmp_path / "spot.yaml"
    workdir = Path(__file__).parents[2] / "examples" / "hello"
    path.write_text(SPOT.format(base=base, workdir=workdir))
    return path


@pytest.fixture
def live(controller: ControllerProcess, tmp_path: Path) -> Iterator[ControllerProcess]:
    yield controller


def svc(env: Env) -> dict[str, Any]:
    out = env.serve("status", "live", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def alive(service: dict[str, Any], spot: bool, status: str = "READY") -> list[dict[str, Any]]:
    return [r for r in service["replicas"] if r["spot"] is spot and r["status"] == status]


def non_ended(service: dict[str, Any], spot: bool) -> list[dict[str, Any]]:
    ended = {
        "PREEMPTED",
        "FAILED",
        "FAILED_PROVISION",
        "FAILED_PROBING",
        "FAILED_INITIAL_DELAY",
        "SHUTTING_DOWN",
    }
    return [r for r in service["replicas"] if r["spot"] is spot and r["status"] not in ended]


def events(env: Env) -> list[dict[str, Any]]:
    return httpx.get(f"{env.url}/api/v1/services/live/events", params={"limit": 1000}).json()


def settle_spot(env: Env, spot_ready: int, on_demand: int, timeout: float = 60) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        s = svc(env)
        good = (
            len(alive(s, True)) == spot_ready
            and len(non_ended(s, True)) == spot_ready
            and len(alive(s, False)) == on_demand
            and len(non_ended(s, False)) == on_demand
        )
        return s if good else None

    return wait_until(ok, f"{spot_ready} spot + {on_demand} on-demand READY", timeout, every=0.3)


def market(env: Env, zone: str, capacity: int | None) -> None:
    args = ["--unlimited"] if capacity is None else ["--spot-capacity", str(capacity)]
    out = env.serve("market", "set", zone, *args)
    assert out.returncode == 0, out.stderr


def up(env: Env, path: Path) -> str:
    out = env.serve("up", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    return str(svc(env)["endpoint"])


def test_zone_preemption_moves_spot_and_bridges_with_on_demand(
    live: ControllerProcess, tmp_path: Path
) -> None:
    env = live.env
    endpoint = up(env, spot_yaml(tmp_path))
    first = settle_spot(env, spot_ready=3, on_demand=0)
    assert sorted(r["zone"] for r in alive(first, True)) == ["local-a", "local-b", "local-c"]

    client = SteadyClient(endpoint, rate=20).start()
    try:
        market(env, "local-a", 0)
        after = settle_spot(env, spot_ready=3, on_demand=0)
    finally:
        client.stop()

    assert "local-a" not in {r["zone"] for r in alive(after, True)}
    assert after["policy_state"]["preemptive"] == ["local/local/local-a"]
    kinds = [e["kind"] for e in events(env)]
    preempted_at = kinds.index("replica_preempted")
    assert "fallback_to_on_demand" in kinds[preempted_at:]
    assert "back_to_spot" in kinds[kinds.index("fallback_to_on_demand", preempted_at) :]
    launched = [e for e in events(env)[preempted_at:] if e["kind"] == "replica_launching"]
    assert any(not e["data"]["spot"] for e in launched), "an on-demand replica bridges the gap"
    assert client.sent > 20 and client.failures == []


def test_no_spot_anywhere_falls_back_to_on_demand_and_returns(
    live: ControllerProcess, tmp_path: Path
) -> None:
    env = live.env
    endpoint = up(env, spot_yaml(tmp_path))
    settle_spot(env, spot_ready=3, on_demand=0)
    for zone in ("local-a", "local-b", "local-c"):
        market(env, zone, 0)
    settle_spot(env, spot_ready=0, on_demand=2)
    # The service's status is stored at the end of the tick that made the replicas READY.
    wait_until(lambda: svc(env)["status"] == "READY", "the service to be READY on on-demand")
    # The load balancer learns of the on-demand replicas at its next sync (0.5 s here).
    wait_until(
        lambda: (
            httpx.post(f"{endpoint}/v1/chat/completions", json={"messages": []}).status_code == 200
        ),
        "the endpoint to answer from the on-demand replicas",
        5,
    )
    client = SteadyClient(endpoint, rate=20).start()
    try:
        for zone in ("local-a", "local-b", "local-c"):
            market(env, zone, None)
        settle_spot(env, spot_ready=3, on_demand=0, timeout=90)
    finally:
        client.stop()
    # Not asserted: that the returning spot replicas spread over zones. SpotHedge places each
    # in an unused active zone unless that zone refused a launch within the refusal backoff;
    # zones that return while their backoff runs are skipped, so all three may stack in one
    # zone (README: SpotHedge in the running controller). This was the test's flake.
    assert client.failures == [], "returning to spot must not drop requests"


def test_base_on_demand_replica_is_always_kept(live: ControllerProcess, tmp_path: Path) -> None:
    env = live.env
    up(env, spot_yaml(tmp_path, base=1))
    steady = settle_spot(env, spot_ready=2, on_demand=1)
    market(env, "local-a", 0)
    market(env, "local-b", 0)
    market(env, "local-c", 0)
    fallen = settle_spot(env, spot_ready=0, on_demand=2)
    assert {r["id"] for r in alive(steady, False)} <= {r["id"] for r in alive(fallen, False)}


def test_controller_restart_mid_preemption_picks_up_state_and_launches_nothing_twice(
    live: ControllerProcess, tmp_path: Path
) -> None:
    env = live.env
    up(env, spot_yaml(tmp_path))
    before = settle_spot(env, spot_ready=3, on_demand=0)
    survivors = {r["id"]: r["url"] for r in alive(before, True) if r["zone"] != "local-a"}
    market(env, "local-a", 0)
    wait_until(lambda: "replica_preempted" in [e["kind"] for e in events(env)], "the preemption")
    live.kill()
    live.start()
    after = settle_spot(env, spot_ready=3, on_demand=0)
    assert after["policy_state"]["preemptive"] == ["local/local/local-a"]
    now = {r["id"]: r["url"] for r in alive(after, True)}
    assert all(now.get(i) == url for i, url in survivors.items()), "survivors were relaunched"
    records = [json.loads(p.read_text()) for p in (env.home / "local" / "instances").glob("*.json")]
    live_ids = {r["replica_id"] for r in records if r["state"] == "running"}
    assert live_ids <= {r["id"] for r in after["replicas"]}, "an instance without a replica row"
    assert {r["id"] for r in after["replicas"] if r["status"] == "READY"} <= live_ids
    assert not [e for e in events(env) if e["kind"] == "orphan_terminated"]
