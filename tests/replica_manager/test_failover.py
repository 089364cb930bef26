"""Failover across zones, regions and clouds in one tick, at the wire: AWS on moto behind
its error proxy, GCP on the Compute fake, the real SDK clients in between."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from policies.types import Location
from tests.fakes.gcp_compute import FakeGCPCompute
from tests.fakes.moto_ec2 import MotoEC2
from tests.provisioners.test_aws import moto_ec2  # noqa: F401 (module-scoped fixture)
from tests.replica_manager.conftest import Harness

ORDERED = """
service:
  readiness_probe: {path: /health, initial_delay_seconds: 600}
  replicas: 1
resources:
  accelerators: T4:1
  ports: 8080
  ordered:
    - {cloud: aws, zone: us-east-1a}
    - {cloud: aws, zone: us-west-2b}
    - {cloud: gcp, zone: us-central1-a}
run: python3 -m http.server 8080
"""


@pytest.fixture
def harness_clouds() -> tuple[str, ...]:
    return ("aws", "gcp")


@pytest.fixture
def clouds(
    moto_ec2: MotoEC2,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[MotoEC2, FakeGCPCompute]]:
    gcp = FakeGCPCompute(project="test-project")
    gcp.start()
    monkeypatch.setenv("SERVE_GCP_API_ENDPOINT", gcp.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    moto_ec2.clear()
    yield moto_ec2, gcp
    moto_ec2.clear()
    gcp.stop()


@pytest.fixture
def failover(clouds: tuple[MotoEC2, FakeGCPCompute], harness: Harness) -> Harness:
    return harness


def test_two_refusals_then_the_third_location_in_the_same_tick(
    clouds: tuple[MotoEC2, FakeGCPCompute], failover: Harness
) -> None:
    aws, gcp = clouds
    aws.refuse_capacity(Location("aws", "us-east-1", "us-east-1a"))
    aws.exceed_quota(Location("aws", "us-west-2", "us-west-2b"))
    failover.create(text=ORDERED)

    failover.tick()

    records = failover.replicas()
    launched = [r for r in records if r.instance_id]
    assert [r.location.key for r in launched] == ["gcp/us-central1/us-central1-a"]
    refused = sorted((r.location.zone, r.status.value) for r in records if not r.instance_id)
    assert refused == [("us-east-1a", "FAILED_PROVISION"), ("us-west-2b", "FAILED_PROVISION")]
    assert (
        "no capacity" in next(r for r in records if r.location.zone == "us-east-1a").status_reason
    )
    assert "quota" in next(r for r in records if r.location.zone == "us-west-2b").status_reason
    assert len(gcp.instances) == 1
    kinds = _event_kinds(failover)
    assert kinds.count("launch_refused") == 2


def test_bad_credentials_are_reported_and_that_cloud_is_not_retried(
    clouds: tuple[MotoEC2, FakeGCPCompute], failover: Harness
) -> None:
    aws, _ = clouds
    aws.reject_credentials()
    text = ORDERED.replace("    - {cloud: gcp, zone: us-central1-a}\n", "")
    failover.create(text=text)
    for _ in range(3):
        failover.tick()
    attempts = [r for r in failover.replicas() if r.location.cloud == "aws"]
    assert len(attempts) == 1, "a credentials error must not be retried every tick"
    assert "credentials" in attempts[0].status_reason
    assert "cloud_blocked" in _event_kinds(failover)


def _event_kinds(h: Harness) -> list[str]:
    from sqlalchemy import select

    from controller.db import EventRow

    with h.rt.db.session() as s:
        return list(s.scalars(select(EventRow.kind).order_by(EventRow.id)).all())


AWS_ONLY = ORDERED.replace("    - {cloud: aws, zone: us-west-2b}\n", "").replace(
    "    - {cloud: gcp, zone: us-central1-a}\n", ""
)


def test_crash_between_launch_and_record_on_aws_adopts_the_instance(
    clouds: tuple[MotoEC2, FakeGCPCompute], failover: Harness
) -> None:
    from policies.types import Offer
    from provisioners.base import LaunchRequest
    from replica_manager.records import ReplicaStatus as S

    failover.create(text=AWS_ONLY)
    store = failover.rt.reconciler.store  # type: ignore[union-attr]
    aws = failover.rt.reconciler.provisioners["aws"]  # type: ignore[union-attr]
    loc = Location("aws", "us-east-1", "us-east-1a")
    intent = store.create_intent("svc", 1, loc, False, "g4dn.xlarge", 0.526, 0.526)
    store.transition(intent, S.PROVISIONING, "launching")
    inst = aws.launch(
        LaunchRequest(
            service="svc",
            replica_id=intent.replica_id,
            launch_token=intent.launch_token,
            controller_id=failover.rt.installation_id,
            offer=Offer(loc, 0.526, None, "g4dn.xlarge"),
            spot=False,
            port=8080,
            run="true",
        )
    )
    orphan = aws.launch(
        LaunchRequest(
            service="svc",
            replica_id=99,
            launch_token="f" * 32,
            controller_id=failover.rt.installation_id,
            offer=Offer(loc, 0.526, None, "g4dn.xlarge"),
            spot=False,
            port=8080,
            run="true",
        )
    )

    failover.tick()

    records = failover.replicas()
    assert [(r.replica_id, r.instance_id) for r in records] == [
        (intent.replica_id, inst.instance_id)
    ]
    ours = failover.rt.installation_id  # not a late launch of an earlier test's runtime
    live = {i.instance_id for i in aws.list_owned("svc") if i.controller_id == ours}
    assert live == {inst.instance_id}, "the orphan must be terminated, the adopted kept"
    assert orphan.instance_id not in live


def test_a_new_instance_ec2_does_not_show_yet_is_waited_for_not_failed(
    clouds: tuple[MotoEC2, FakeGCPCompute], failover: Harness
) -> None:
    """EC2 is eventually consistent: right after RunInstances, DescribeInstances may answer
    InvalidInstanceID.NotFound. That is not a dead replica, and not the app's fault."""
    aws, _ = clouds
    assert aws.proxy is not None
    failover.create(text=AWS_ONLY)
    aws.proxy.hide_new_instances(times=8)  # several ticks' worth

    failover.tick_until(
        lambda: any(r.status == "STARTING" for r in failover.replicas()),
        "the instance to be seen running once EC2 shows it",
    )
    statuses = {r.status for r in failover.replicas()}
    assert statuses <= {"STARTING", "PROVISIONING"}, statuses
    svc = failover.service()
    assert svc is not None and svc.tick_state["app_failure_streak"] == 0
    assert len(aws.proxy.received("RunInstances")) == 1, "nothing was launched twice"


def test_an_ordinary_tick_costs_one_describe_in_the_services_region(
    clouds: tuple[MotoEC2, FakeGCPCompute], failover: Harness
) -> None:
    """Per tick only the regions the service uses are listed, and no security-group sweep
    (it runs with the installation sweep): real accounts throttle EC2 per action."""
    aws, _ = clouds
    assert aws.proxy is not None
    failover.create(text=AWS_ONLY)
    failover.tick_until(lambda: all(r.instance_id for r in failover.replicas()), "launched")
    reconciler = failover.rt.reconciler
    assert reconciler is not None
    reconciler.settings = replace(reconciler.settings, orphan_scan_seconds=3600.0)
    failover.tick()  # the first scan after leading is a full one
    aws.proxy.clear()

    failover.tick()

    ec2 = [c.action for c in aws.proxy.received_calls() if c.service == "ec2"]
    assert ec2 == ["DescribeInstances"], ec2
