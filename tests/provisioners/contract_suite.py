"""The provisioner contract: one suite, run against every adapter at its wire.

An adapter's test module imports these tests (`from tests.provisioners.contract_suite
import *`) and defines a `cloud` fixture returning a `CloudUnderTest`: the real adapter
pointed at a fake that speaks the cloud's protocol, plus the fake's control knobs. The fake,
not our code, is what gets programmed to fail.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

import pytest

from policies.types import Location, Offer
from provisioners.base import (
    TAG_LAUNCH_TOKEN,
    TAG_SERVICE,
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


def test_launch_spot_returns_tagged_spot_instance(cloud: CloudUnderTest) -> None:
    req = cloud.request(spot=True)
    inst = cloud.provisioner.launch(req)
    assert inst.spot is cloud.sells_spot
    assert inst.location == req.location
    assert inst.state in (InstanceState.PENDING, InstanceState.RUNNING)
    tags = cloud.fake.tags_of(inst.instance_id)
    assert tags[TAG_SERVICE] == "svc"
    assert tags[TAG_LAUNCH_TOKEN] == req.launch_token


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
    owned = {i.instance_id for i in cloud.provisioner.list_owned("svc")}
    assert mine.instance_id in owned
    assert other.instance_id not in owned
    everything = {i.instance_id for i in cloud.provisioner.list_owned()}
    assert {mine.instance_id, other.instance_id} <= everything


def test_terminate_removes_instance_and_tolerates_repeat(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    cloud.provisioner.terminate(inst.instance_id, inst.location)
    cloud.provisioner.terminate(inst.instance_id, inst.location)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is None or got.state == InstanceState.TERMINATED
    live = [i for i in cloud.provisioner.list_owned("svc") if i.instance_id == inst.instance_id]
    assert all(i.state == InstanceState.TERMINATED for i in live)


def test_preempted_spot_instance_is_reported_preempted(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    cloud.fake.preempt(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None, "a preempted instance must be reported, not forgotten"
    assert got.state == InstanceState.PREEMPTED


def test_capacity_refusal_says_try_elsewhere(cloud: CloudUnderTest) -> None:
    cloud.fake.refuse_capacity(cloud.location_a)
    with pytest.raises(CapacityUnavailable) as err:
        cloud.provisioner.launch(cloud.request(cloud.location_a))
    assert err.value.try_elsewhere
    inst = cloud.provisioner.launch(cloud.request(cloud.location_b))
    assert inst.location == cloud.location_b


def test_quota_refusal_is_quota_exceeded(cloud: CloudUnderTest) -> None:
    cloud.fake.exceed_quota(cloud.location_a)
    with pytest.raises(QuotaExceeded) as err:
        cloud.provisioner.launch(cloud.request(cloud.location_a))
    assert err.value.try_elsewhere


def test_rejected_credentials_are_not_retried(cloud: CloudUnderTest) -> None:
    cloud.fake.reject_credentials()
    with pytest.raises(CredentialsError) as err:
        cloud.provisioner.launch(cloud.request())
    assert not err.value.try_elsewhere and not err.value.retry_later


def test_refused_launch_leaves_nothing_behind(cloud: CloudUnderTest) -> None:
    cloud.fake.refuse_capacity(cloud.location_a)
    with pytest.raises(ProvisionError):
        cloud.provisioner.launch(cloud.request(cloud.location_a, service="leaky"))
    live = [i for i in cloud.provisioner.list_owned("leaky") if i.state != InstanceState.TERMINATED]
    assert live == []
