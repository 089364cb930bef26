"""Where the local provisioner's spot replicas land with and without `spot_placer`, through
real ticks: spread over zones with the placer, all in the cheapest zone without it (as
SkyPilot launches spot replicas without a placer)."""

from __future__ import annotations

import pytest

from replica_manager.lifecycle import ALIVE
from tests.replica_manager.conftest import APP, Harness

SPOT = f"""
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 20, timeout_seconds: 2}}
  replica_policy: {{min_replicas: 3, max_replicas: 3, num_overprovision: 0{{placer}}}}
resources:
  ports: 8080
  use_spot: true
run: python3 {APP}
"""


@pytest.mark.parametrize(
    ("placer", "zones"),
    [
        (", spot_placer: dynamic_fallback", ["local-a", "local-b", "local-c"]),
        ("", ["local-b", "local-b", "local-b"]),
    ],
    ids=["dynamic_fallback", "no placer"],
)
def test_spot_replicas_land_where_the_placer_says(
    harness: Harness, placer: str, zones: list[str]
) -> None:
    harness.local.market.set_zone("local-b", spot_price=0.5)  # the cheapest spot zone
    harness.create(text=SPOT.replace("{placer}", placer))
    harness.tick()
    alive = [r for r in harness.replicas() if r.status in ALIVE]
    assert all(r.spot for r in alive)
    assert sorted(r.location.zone for r in alive) == zones
