"""The reconcile tick against real processes, probes and databases."""

from __future__ import annotations

import json
import secrets

from policies.types import Location, Offer
from provisioners.base import InstanceState, LaunchRequest
from replica_manager.records import ReplicaStatus as S
from tests.replica_manager.conftest import APP, SPEC, Harness


def ready(h: Harness, name: str = "svc") -> list:
    return [r for r in h.replicas(name) if r.status == S.READY]


def test_service_reaches_its_replica_count_and_is_ready(harness: Harness) -> None:
    harness.create()
    harness.tick_until(lambda: len(ready(harness)) == 2, "two READY replicas")
    harness.tick()
    svc = harness.service()
    assert svc is not None and svc.status == "READY" and svc.target_replicas == 2


def test_replica_failing_probes_goes_not_ready_then_is_replaced(harness: Harness) -> None:
    harness.create()
    first = harness.tick_until(lambda: len(ready(harness)) == 2 and ready(harness), "READY")
    sick = first[0]
    (harness.workdir_of(sick) / "unhealthy").touch()
    harness.tick_until(
        lambda: any(
            r.replica_id == sick.replica_id and r.status == S.NOT_READY for r in harness.replicas()
        ),
        "the sick replica to be NOT_READY",
    )
    harness.tick_until(
        lambda: (
            len(ready(harness)) == 2
            and sick.replica_id not in {r.replica_id for r in ready(harness)}
        ),
        "a replacement to be READY",
    )
    states = {r.replica_id: r.status for r in harness.replicas()}
    assert states.get(sick.replica_id) in (S.FAILED_PROBING, None)
    assert all(i.instance_id != sick.instance_id for i in harness.local.list_owned("svc"))


def test_replica_that_never_gets_ready_fails_and_the_service_stops_relaunching(
    harness: Harness,
) -> None:
    broken = SPEC.replace("initial_delay_seconds: 20", "initial_delay_seconds: 1").replace(
        f"run: python3 {APP}", "run: sleep 600"
    )
    harness.create(text=broken.replace("replicas: 2", "replicas: 1"))
    harness.tick_until(
        lambda: (svc := harness.service()) is not None and svc.status == "FAILED",
        "the service to be FAILED",
        timeout=60,
    )
    failed = [r for r in harness.replicas() if r.status == S.FAILED_INITIAL_DELAY]
    assert len(failed) == 3
    assert "initial_delay_seconds=1" in failed[0].status_reason
    for _ in range(5):
        harness.tick()
    assert len(harness.replicas()) == 3, "a FAILED service must not keep launching"
    assert not [i for i in harness.local.list_owned("svc") if i.state == InstanceState.RUNNING]


def test_post_probe_sends_post_data(harness: Harness, tmp_path) -> None:
    workdir = tmp_path / "app"
    workdir.mkdir()
    payload = {"model": "m", "max_tokens": 1}
    (workdir / "expect_post").write_text(json.dumps(payload))
    text = SPEC.replace("path: /health", f"path: /health\n    post_data: {json.dumps(payload)}")
    harness.create(text=text.replace("replicas: 2", "replicas: 1") + f"workdir: {workdir}\n")
    harness.tick_until(lambda: len(ready(harness)) == 1, "the POST probe to pass")


def test_orphan_instance_of_the_service_is_terminated(harness: Harness) -> None:
    harness.create(text=SPEC.replace("replicas: 2", "replicas: 1"))
    harness.tick_until(lambda: ready(harness), "READY")
    orphan = harness.local.launch(_request(harness, replica_id=99, token=secrets.token_hex(16)))
    harness.tick()
    left = {i.instance_id for i in harness.local.list_owned("svc")}
    assert orphan.instance_id not in left
    assert len(left) == 1


def test_an_instance_of_another_installation_is_left_alone(harness: Harness) -> None:
    """Two installations in one account (a laptop and production) share tag names; each
    reaps only what it launched."""
    harness.create(text=SPEC.replace("replicas: 2", "replicas: 1"))
    harness.tick_until(lambda: ready(harness), "READY")
    foreign = harness.local.launch(
        _request(harness, replica_id=99, token=secrets.token_hex(16), installation="ctrl-other")
    )
    harness.tick()  # the harness scans for orphans on every tick
    harness.rt.reconciler.sweep_installation()  # type: ignore[union-attr]
    left = {i.instance_id for i in harness.local.list_owned("svc")}
    assert foreign.instance_id in left


def test_launch_interrupted_after_the_cloud_call_is_adopted_not_duplicated(
    harness: Harness,
) -> None:
    harness.create(text=SPEC.replace("replicas: 2", "replicas: 1"))
    store = harness.rt.reconciler.store  # type: ignore[union-attr]
    loc = Location("local", "local", "local-a")
    intent = store.create_intent("svc", 1, loc, False, "local-process", 3.0, 3.0)
    store.transition(intent, S.PROVISIONING, "launching")
    inst = harness.local.launch(
        _request(harness, replica_id=intent.replica_id, token=intent.launch_token)
    )
    harness.tick_until(lambda: ready(harness), "the adopted replica to be READY")
    records = harness.replicas()
    assert [(r.replica_id, r.instance_id) for r in records] == [
        (intent.replica_id, inst.instance_id)
    ]
    assert len(harness.local.list_owned("svc")) == 1


def test_launch_intent_that_never_reached_the_cloud_is_failed_and_replaced(
    harness: Harness,
) -> None:
    harness.create(text=SPEC.replace("replicas: 2", "replicas: 1"))
    store = harness.rt.reconciler.store  # type: ignore[union-attr]
    intent = store.create_intent(
        "svc", 1, Location("local", "local", "local-a"), False, "local-process", 3.0, 3.0
    )
    harness.tick_until(lambda: ready(harness), "a replacement READY")
    by_id = {r.replica_id: r for r in harness.replicas()}
    assert by_id[intent.replica_id].status == S.FAILED_PROVISION
    assert "interrupted" in by_id[intent.replica_id].status_reason


def _request(
    h: Harness, replica_id: int, token: str, installation: str | None = None
) -> LaunchRequest:
    loc = Location("local", "local", "local-a")
    return LaunchRequest(
        service="svc",
        replica_id=replica_id,
        launch_token=token,
        controller_id=installation or h.rt.installation_id,
        offer=Offer(loc, 3.0, 1.0, "local-process"),
        spot=False,
        port=8080,
        run=f"python3 {APP}",
    )


def test_update_brings_up_the_new_version_before_retiring_the_old(harness: Harness) -> None:
    from controller.spec import load_spec_text
    from controller.updates import update_service

    harness.create(text=SPEC.replace("replicas: 2", "replicas: 1"))
    old = harness.tick_until(lambda: ready(harness), "version 1 READY")[0]
    new_spec = SPEC.replace("replicas: 2", "replicas: 1") + "envs: {V: '2'}\n"
    update_service(harness.rt.db, harness.rt.clock, "svc", load_spec_text(new_spec))
    harness.tick()
    versions = {r.version: r.status for r in harness.replicas()}
    assert versions[1] == S.READY, "the old version keeps serving until the new one is ready"
    harness.tick_until(
        lambda: (
            [r.version for r in ready(harness)] == [2]
            and all(r.replica_id != old.replica_id for r in harness.replicas())
        ),
        "only version 2 to remain",
    )
