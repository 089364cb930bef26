"""A preemption notice from the local market, through real ticks: the replica drains (out of
the ready set, still answering), SpotHedge hears of its zone at the notice, the replacement
is launched before the cloud takes the instance, and the taking is not counted twice."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from controller.db import EventRow
from replica_manager.records import ReplicaStatus as S
from tests.replica_manager.conftest import APP, Harness

NOTICE = 8.0
SPOT = f"""
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 20, timeout_seconds: 2}}
  replica_policy:
    {{min_replicas: 2, max_replicas: 2, num_overprovision: 0, spot_placer: dynamic_fallback}}
resources:
  ports: 8080
  use_spot: true
run: python3 {APP}
"""


def _events(harness: Harness, kind: str) -> list[EventRow]:
    with harness.rt.db.session() as s:
        return list(s.scalars(select(EventRow).where(EventRow.kind == kind)).all())


def test_a_notice_drains_the_replica_and_replaces_it_before_the_cloud_takes_it(
    harness: Harness,
) -> None:
    harness.create(text=SPOT)
    ready = harness.tick_until(
        lambda: (
            [r for r in harness.replicas() if r.status == S.READY]
            if sum(r.status == S.READY for r in harness.replicas()) == 2
            else None
        ),
        "two ready spot replicas",
    )
    victim = ready[0]
    zone = victim.location.zone
    others = sum(1 for r in ready if r.location.zone == zone)
    harness.local.market.set_zone(zone, spot_capacity=others - 1, notice_seconds=NOTICE)
    harness.local.enforce_market()

    harness.tick()

    by_id = {r.replica_id: r for r in harness.replicas()}
    drained = [r for r in by_id.values() if r.status == S.DRAINING]
    assert [r.location.zone for r in drained] == [zone]
    draining = drained[0]
    assert draining.drain_deadline is not None and draining.drain_deadline > draining.created_at
    assert httpx.get(f"{draining.url}/health", timeout=5).status_code == 200, (
        "a draining replica still serves the requests it has"
    )
    newer = [r for r in by_id.values() if r.replica_id > max(x.replica_id for x in ready)]
    assert newer and all(r.status in (S.PENDING, S.PROVISIONING, S.STARTING) for r in newer), (
        "the replacement is launched at the notice, not after the loss"
    )
    notice = _events(harness, "preemption_notice")
    assert len(notice) == 1 and notice[0].replica_id == draining.replica_id
    assert (notice[0].data or {})["lead_seconds"] == NOTICE
    service = harness.service()
    assert service is not None
    assert draining.location.key in (service.policy_state or {}).get("preemptive", []), (
        "SpotHedge counts the zone as preempted at the notice"
    )

    harness.tick_until(
        lambda: (
            next(r for r in harness.replicas() if r.row_id == draining.row_id).status == S.PREEMPTED
        ),
        "the drained replica to be taken",
    )
    taken = next(r for r in harness.replicas() if r.row_id == draining.row_id)
    assert "after its notice" in taken.status_reason
    harness.tick_until(
        lambda: sum(r.status == S.READY for r in harness.replicas()) == 2, "two ready again"
    )
