"""adaptive_hedge in the running controller, on the local simulated spot market: two zones
are preempted at once while a client sends requests (more than the hedge of one absorbs),
the policy moves spot out of them, bridging with on-demand, then the zones come back; no
request fails throughout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_spot_live import SPOT, alive, events, market, settle_spot, up
from tests.support.browser import chromium
from tests.support.load import SteadyClient
from tests.support.processes import ControllerProcess, Env

pytestmark = pytest.mark.slow


def adaptive_yaml(tmp_path: Path) -> Path:
    text = SPOT.replace("spot_placer: dynamic_fallback", "spot_policy: adaptive_hedge")
    path = tmp_path / "adaptive.yaml"
    workdir = Path(__file__).parents[2] / "examples" / "hello"
    path.write_text(text.format(base=0, workdir=workdir))
    return path


def test_adaptive_hedge_rides_a_zone_preemption_and_its_recovery(
    controller: ControllerProcess, tmp_path: Path
) -> None:
    env = controller.env
    endpoint = up(env, adaptive_yaml(tmp_path))
    # A fresh policy has not seen a calm market: target 2 plus one hedge replica, spread.
    first = settle_spot(env, spot_ready=3, on_demand=0)
    assert sorted(r["zone"] for r in alive(first, True)) == ["local-a", "local-b", "local-c"]

    client = SteadyClient(endpoint, rate=20).start()
    try:
        market(env, "local-a", 0)
        market(env, "local-b", 0)
        moved = settle_spot(env, spot_ready=3, on_demand=0)
        market(env, "local-a", None)
        market(env, "local-b", None)
        sent_before = client.sent
        recovered = settle_spot(env, spot_ready=3, on_demand=0)
        while client.sent < sent_before + 20:
            settle_spot(env, spot_ready=3, on_demand=0)
    finally:
        client.stop()

    risk = moved["policy_state"]["risk"]
    assert risk["local/local/local-a"][0] >= 0.99 and risk["local/local/local-b"][0] >= 0.99
    assert {r["zone"] for r in alive(moved, True)} == {"local-c"}
    assert {r["zone"] for r in alive(recovered, True)} == {"local-c"}  # a, b remembered as risky
    kinds = [e["kind"] for e in events(env)]
    preempted_at = kinds.index("replica_preempted")
    assert "fallback_to_on_demand" in kinds[preempted_at:]
    assert "back_to_spot" in kinds[preempted_at:]
    assert client.sent > 40 and client.failures == []


def dashboard_shows_on_demand_only(env: Env) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page()
        page.goto(env.url)
        pill = page.locator('#services tr[data-service="live"] .on-demand-only')
        expect(pill).to_have_text("ON-DEMAND ONLY", timeout=60_000)
        expect(pill).to_have_attribute("title", re.compile("99.999% availability target"))
        page.close()


def test_an_availability_target_moves_a_service_short_of_it_onto_on_demand(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    """99.999% allows a third of a second of weighted outage: two zones lost at once leave
    one ready replica of two, and the next tick finds the budget spent. On-demand takes over
    before any spot replica is stopped, and stays when the zones come back. (The policy state
    on Postgres is covered by the test above.)"""
    env = sqlite_controller.env
    path = adaptive_yaml(tmp_path)
    yaml = path.read_text().replace(
        "    spot_policy: adaptive_hedge\n",
        "    spot_policy: adaptive_hedge\n    availability_target: 99.999\n",
    )
    path.write_text(yaml)
    endpoint = up(env, path)
    settle_spot(env, spot_ready=3, on_demand=0)

    client = SteadyClient(endpoint, rate=20).start()
    try:
        market(env, "local-a", 0)
        market(env, "local-b", 0)
        protected = settle_spot(env, spot_ready=0, on_demand=2)
        shown = env.serve("status", "live").stdout
        dashboard_shows_on_demand_only(env)
        market(env, "local-a", None)
        market(env, "local-b", None)
        sent_before = client.sent
        while client.sent < sent_before + 20:
            settle_spot(env, spot_ready=0, on_demand=2)
    finally:
        client.stop()

    assert protected["policy_state"]["budget"]["protecting"] is True
    assert "99.999% availability target" in protected["on_demand_only"]
    assert "on-demand only" in shown, shown
    switches = [e for e in events(env) if e["kind"] == "on_demand_only"]
    assert len(switches) == 1 and switches[0]["data"]["on"] is True, switches  # written once
    assert "above the 99.999% availability target" in switches[0]["message"]
    assert client.sent > 40 and client.failures == []
