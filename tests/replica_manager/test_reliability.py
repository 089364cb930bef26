"""What the reliability review found, each at the tick level with real processes: an
interrupted launch followed by `serve down`, instances of deleted services, vanished and
stuck instances, and event spam."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import func, select

from controller.db import EventRow
from controller.services import request_down
from policies.types import Location, Offer
from provisioners.base import LaunchRequest
from replica_manager.records import ReplicaStatus as S
from tests.replica_manager.conftest import APP, SPEC, Harness

ONE = SPEC.replace("replicas: 2", "replicas: 1")
LOCAL_A = Location("local", "local", "local-a")


@pytest.fixture
def harness_settings() -> dict[str, Any]:
    return {
        "provisioning_deadline_seconds": 2.0,
        "visibility_grace_seconds": 1.0,
        "events_per_service": 10,
        "launch_wait_seconds": 0.5,
    }


def ready(h: Harness, name: str = "svc") -> list[Any]:
    return [r for r in h.replicas(name) if r.status == S.READY]


def launch_tagged(h: Harness, service: str, token: str, replica_id: int = 1) -> str:
    """What a launch call leaves in the cloud before the controller could record it."""
    inst = h.local.launch(
        LaunchRequest(
            service=service,
            replica_id=replica_id,
            launch_token=token,
            controller_id=h.rt.installation_id,
            offer=Offer(LOCAL_A, 3.0, 1.0, "local-process"),
            spot=False,
            port=8080,
            run=f"python3 {APP}",
        )
    )
    return inst.instance_id


def test_serve_down_after_an_interrupted_launch_terminates_the_tagged_instance(
    harness: Harness,
) -> None:
    harness.create(text=ONE)
    store = harness.rt.reconciler.store  # type: ignore[union-attr]
    intent = store.create_intent("svc", 1, LOCAL_A, False, "local-process", 3.0, 3.0)
    store.transition(intent, S.PROVISIONING, "launching")
    launch_tagged(harness, "svc", intent.launch_token, intent.replica_id)
    request_down(harness.rt.db, harness.rt.clock, "svc", purge=False)

    harness.tick_until(lambda: harness.service() is None, "the service to be gone")

    assert harness.local.list_owned("svc") == [], "no instance of the service may outlive it"


def test_the_installation_sweep_terminates_instances_of_services_that_no_longer_exist(
    harness: Harness,
) -> None:
    harness.create(text=ONE)
    launch_tagged(harness, "ghost", secrets.token_hex(16))
    kept = harness.tick_until(lambda: ready(harness), "svc READY")[0]

    found = harness.rt.reconciler.sweep_installation()  # type: ignore[union-attr]

    assert found == 1
    assert harness.local.list_owned("ghost") == []
    assert [i.instance_id for i in harness.local.list_owned("svc")] == [kept.instance_id]


def test_a_replica_whose_instance_vanishes_is_lost_not_an_application_failure(
    harness: Harness,
) -> None:
    harness.create(text=ONE)
    gone = harness.tick_until(lambda: ready(harness), "READY")[0]
    harness.local.terminate(gone.instance_id, gone.location)  # the cloud forgets it

    harness.tick_until(
        lambda: any(
            r.status == S.READY and r.replica_id != gone.replica_id for r in ready(harness)
        ),
        "a replacement READY",
    )
    record = next(r for r in harness.replicas() if r.replica_id == gone.replica_id)
    assert record.status == S.PREEMPTED
    assert record.status_reason.startswith("lost:")
    svc = harness.service()
    assert svc is not None and svc.tick_state["app_failure_streak"] == 0


def test_an_instance_stuck_pending_past_the_deadline_is_replaced_elsewhere(
    harness: Harness,
) -> None:
    harness.local.market.set_zone("local-a", boot_seconds=1e6, on_demand_price=1.0)
    harness.create(text=ONE)

    harness.tick_until(lambda: ready(harness), "a replica READY outside the stuck zone")

    (stuck,) = [r for r in harness.replicas() if r.status == S.FAILED_PROVISION]
    assert stuck.location.zone == "local-a"
    assert "not running 2s after launch" in stuck.status_reason
    assert ready(harness)[0].location.zone != "local-a"
    harness.tick_until(
        lambda: stuck.instance_id not in {i.instance_id for i in harness.local.list_owned()},
        "the stuck instance to be terminated",
    )


def test_a_stuck_service_writes_one_event_row_with_a_count(harness: Harness) -> None:
    harness.create(text=ONE.replace("  ports: 8080\n", "  ports: 8080\n  zone: local-z\n"))
    for _ in range(5):
        harness.tick()
    with harness.rt.db.session() as s:
        rows = s.scalars(select(EventRow).where(EventRow.kind == "no_location")).all()
        assert [r.count for r in rows] == [5]
        assert rows[0].last_at is not None and rows[0].last_at >= rows[0].at


def test_events_kept_per_service_are_capped(harness: Harness) -> None:
    harness.create(text=ONE)
    store = harness.rt.reconciler.store  # type: ignore[union-attr]
    for i in range(30):
        store.event("svc", "note", f"distinct event {i}")
    harness.tick()  # the harness scans (and trims) on every tick
    with harness.rt.db.session() as s:
        count = s.scalar(
            select(func.count()).select_from(EventRow).where(EventRow.service_name == "svc")
        )
    assert count is not None and count <= 10


def test_a_hung_cloud_holds_neither_the_tick_nor_the_probes(harness: Harness) -> None:
    """Every zone's API answers launches and terminations only after 8 s. The tick waits
    for them no longer than `launch_wait_seconds`, so probes go on: a replica that turns
    unhealthy meanwhile is still seen NOT_READY, and the slow launch is not repeated."""
    harness.create(text=SPEC)
    first, second = harness.tick_until(lambda: len(ready(harness)) == 2 and ready(harness), "READY")
    for zone in ("local-a", "local-b", "local-c"):
        harness.local.market.set_zone(zone, api_delay_seconds=8.0)
    harness.local.preempt(first.instance_id, "taken")  # a replacement launch will hang
    (harness.workdir_of(second) / "unhealthy").touch()

    harness.tick_until(
        lambda: any(
            r.replica_id == second.replica_id and r.status == S.NOT_READY
            for r in harness.replicas()
        ),
        "the unhealthy replica to be seen NOT_READY while a launch hangs",
        timeout=7,
    )
    executor = harness.rt.reconciler.executor  # type: ignore[union-attr]
    assert executor.in_flight("svc"), "the replacement launch is still running"
    launching = [r for r in harness.replicas() if r.status in (S.PENDING, S.PROVISIONING)]
    assert len(launching) == 1, "a launch in flight is not started again"
    harness.tick_until(
        lambda: not executor.in_flight("svc"), "the slow launch to finish", timeout=30
    )
    for zone in ("local-a", "local-b", "local-c"):
        harness.local.market.set_zone(zone, api_delay_seconds=0.0)


def test_a_replica_slow_to_answer_its_probe_holds_no_tick(harness: Harness) -> None:
    """Probes run beside the ticks: a replica whose probe takes 20 s to answer is judged
    when its answer comes (its timeout here is 2 s), while ticks go on meanwhile."""
    harness.create(text=SPEC)
    slow, other = harness.tick_until(lambda: len(ready(harness)) == 2 and ready(harness), "READY")
    (harness.workdir_of(slow) / "hang").write_text("20")
    (harness.workdir_of(other) / "unhealthy").touch()
    ticks = 0

    def other_not_ready() -> bool:
        nonlocal ticks
        ticks += 1
        return any(
            r.replica_id == other.replica_id and r.status == S.NOT_READY for r in harness.replicas()
        )

    harness.tick_until(
        other_not_ready, "the unhealthy replica seen while another hangs", timeout=15
    )
    assert ticks >= 2, "several ticks ran while a probe hung"
    (harness.workdir_of(slow) / "hang").unlink()
