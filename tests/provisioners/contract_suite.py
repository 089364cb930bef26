"""The provisioner contract: one suite, run against every adapter at its wire.

An adapter's test module imports these tests (`from tests.provisioners.contract_suite
import *`) and defines a `cloud` fixture returning a `CloudUnderTest`: the real adapter
pointed at a fake that speaks the cloud's protocol, plus the fake's control knobs. The fake,
not our code, is what gets programmed to fail.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Protocol

import pytest

from policies.types import Location, Offer
from provisioners.base import (
    TAG_LAUNCH_TOKEN,
    TAG_SERVICE,
    Instance,
    InstanceState,
    LaunchRequest,
    Provisioner,
)
from provisioners.errors import (
    CapacityUnavailable,
    CredentialsError,
    ProvisionError,
    QuotaExceeded,
)


class FakeCloudControl(Protocol):
    """Knobs on the fake cloud. A knob the cloud has no equivalent of calls pytest.skip."""

    def refuse_capacity(self, location: Location) -> None: ...

    def exceed_quota(self, location: Location) -> None: ...

    def reject_credentials(self) -> None: ...

    def preempt(self, instance_id: str) -> None: ...

    def tags_of(self, instance_id: str) -> dict[str, str]: ...


@dataclass
class CloudUnderTest:
    """`sells_spot=False` for a cloud without a spot market (Kubernetes): its instances
    are on-demand even when spot was asked for, and must say so."""

    provisioner: Provisioner
    fake: FakeCloudControl
    location_a: Location
    location_b: Location
    instance_type: str
    sells_spot: bool = True

    def request(
        self,
        location: Location | None = None,
        *,
        spot: bool = True,
        service: str = "svc",
        replica_id: int = 1,
    ) -> LaunchRequest:
        where = location or self.location_a
        return LaunchRequest(
            service=service,
            replica_id=replica_id,
            launch_token=uuid.uuid4().hex,
            controller_id="ctrl-test",
            offer=Offer(
                where, on_demand_price=3.0, spot_price=1.0, instance_type=self.instance_type
            ),
            spot=spot,
            port=8080,
            run="python3 -m http.server 8080",
            setup="echo setup",
            envs={"MODEL": "tiny"},
        )


def launch_outcome(cloud: CloudUnderTest, request: LaunchRequest) -> Instance | ProvisionError:
    """What became of a launch: the refusal `launch` raised, the refusal `get` reported
    later (REFUSED, for clouds that find out after accepting), or the instance once it is
    no longer PENDING. Fakes answer quickly, so a few seconds bound the wait."""
    try:
        inst = cloud.provisioner.launch(request)
    except ProvisionError as exc:
        return exc
    deadline = time.monotonic() + 10
    while inst.state == InstanceState.PENDING and time.monotonic() < deadline:
        time.sleep(0.05)
        inst = cloud.provisioner.get(inst.instance_id, inst.location) or inst
    if inst.state == InstanceState.REFUSED:
        assert inst.error is not None, "a REFUSED instance says why"
        return inst.error
    return inst


def terminate_fully(cloud: CloudUnderTest, inst: Instance) -> None:
    """Call terminate until it says everything is gone, as the replica manager does."""
    deadline = time.monotonic() + 30
    while not cloud.provisioner.terminate(inst.instance_id, inst.location):
        assert time.monotonic() < deadline, f"{inst.instance_id} still not gone after 30 s"
        time.sleep(0.05)


def test_launch_spot_returns_tagged_spot_instance(cloud: CloudUnderTest) -> None:
    req = cloud.request(spot=True)
    inst = cloud.provisioner.launch(req)
    assert inst.spot is cloud.sells_spot
    assert inst.location == req.location
    assert inst.state in (InstanceState.PENDING, InstanceState.RUNNING)
    tags = cloud.fake.tags_of(inst.instance_id)
    assert tags[TAG_SERVICE] == "svc"
    assert tags[TAG_LAUNCH_TOKEN] == req.launch_token
    assert inst.controller_id == req.controller_id


def test_launch_on_demand_returns_on_demand_instance(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=False))
    assert inst.spot is False
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.spot is False


def test_get_reports_live_instance_with_its_identity(cloud: CloudUnderTest) -> None:
    req = cloud.request(replica_id=7)
    inst = cloud.provisioner.launch(req)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None
    assert got.state in (InstanceState.PENDING, InstanceState.RUNNING)
    assert (got.service, got.replica_id, got.launch_token) == ("svc", 7, req.launch_token)


def test_list_owned_finds_instances_by_service(cloud: CloudUnderTest) -> None:
    mine = cloud.provisioner.launch(cloud.request(service="svc", replica_id=1))
    other = cloud.provisioner.launch(cloud.request(service="other", replica_id=1))
    owned = {i.instance_id: i for i in cloud.provisioner.list_owned("svc")}
    assert mine.instance_id in owned
    assert other.instance_id not in owned
    assert owned[mine.instance_id].controller_id == "ctrl-test"
    everything = {i.instance_id for i in cloud.provisioner.list_owned()}
    assert {mine.instance_id, other.instance_id} <= everything


def test_list_owned_in_the_instance_region_finds_it(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    found = cloud.provisioner.list_owned("svc", regions=[inst.location.region])
    assert inst.instance_id in {i.instance_id for i in found}


def test_terminate_removes_instance_and_tolerates_repeat(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    terminate_fully(cloud, inst)
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is True
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is None or got.state == InstanceState.TERMINATED
    left = [i for i in cloud.provisioner.list_owned("svc") if i.instance_id == inst.instance_id]
    assert left == [], "nothing of a fully terminated instance is left to find"


def test_terminate_of_an_instance_just_launched_deletes_it(cloud: CloudUnderTest) -> None:
    """Terminate goes by id even before the instance shows up in listings."""
    inst = cloud.provisioner.launch(cloud.request(service="quick"))
    terminate_fully(cloud, inst)
    assert [i for i in cloud.provisioner.list_owned("quick")] == []


def test_preempted_spot_instance_is_reported_preempted(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    cloud.fake.preempt(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None, "a preempted instance must be reported, not forgotten"
    assert got.state == InstanceState.PREEMPTED


def test_capacity_refusal_says_try_elsewhere(cloud: CloudUnderTest) -> None:
    cloud.fake.refuse_capacity(cloud.location_a)
    refused = launch_outcome(cloud, cloud.request(cloud.location_a))
    assert isinstance(refused, CapacityUnavailable), refused
    assert refused.try_elsewhere
    inst = launch_outcome(cloud, cloud.request(cloud.location_b))
    assert isinstance(inst, Instance), inst
    assert inst.location == cloud.location_b


def test_quota_refusal_is_quota_exceeded(cloud: CloudUnderTest) -> None:
    cloud.fake.exceed_quota(cloud.location_a)
    refused = launch_outcome(cloud, cloud.request(cloud.location_a))
    assert isinstance(refused, QuotaExceeded), refused
    assert refused.try_elsewhere


def test_rejected_credentials_are_not_retried(cloud: CloudUnderTest) -> None:
    cloud.fake.reject_credentials()
    with pytest.raises(CredentialsError) as err:
        cloud.provisioner.launch(cloud.request())
    assert not err.value.try_elsewhere and not err.value.retry_later


def test_refused_launch_leaves_nothing_behind(cloud: CloudUnderTest) -> None:
    """A refusal raised by launch leaves nothing; one found out later is cleaned up by the
    terminate the replica manager then calls."""
    cloud.fake.refuse_capacity(cloud.location_a)
    try:
        inst = cloud.provisioner.launch(cloud.request(cloud.location_a, service="leaky"))
    except ProvisionError:
        inst = None
    if inst is not None:
        terminate_fully(cloud, inst)
    assert cloud.provisioner.list_owned("leaky") == []


def test_release_of_a_service_is_idempotent(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request(service="gone"))
    terminate_fully(cloud, inst)
    assert cloud.provisioner.release("gone") is True
    assert cloud.provisioner.release("gone") is True
