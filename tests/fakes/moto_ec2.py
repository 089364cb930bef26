"""AWS for tests: moto's server running in this process, behind `AWSErrorProxy`.

boto3 talks real HTTP to the proxy (`endpoint_url`), which forwards to moto. Capacity,
quota and credential refusals are programmed at the proxy. The ends of an instance are made
the way EC2 reports them (EC2 API reference, "StateReason"): the instance is terminated in
moto's backend and its state reason set to `Server.SpotInstanceTermination` (preempted),
`Client.InstanceInitiatedShutdown` (it shut itself down), `Server.InsufficientInstanceCapacity`
(EC2 ended it during launch) or left at moto's `Client.UserInitiatedShutdown` (someone
called TerminateInstances). Implements `FakeCloudControl` of the contract suite.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import StateReason
from moto.server import ThreadedMotoServer

from policies.types import Location
from tests.fakes.aws_error_proxy import AWSErrorProxy

SPOT_TERMINATION = StateReason(
    "Server.SpotInstanceTermination: Spot instance termination", "Server.SpotInstanceTermination"
)
SELF_SHUTDOWN = StateReason(
    "Client.InstanceInitiatedShutdown: Instance initiated shutdown",
    "Client.InstanceInitiatedShutdown",
)
NO_CAPACITY_AT_LAUNCH = StateReason(
    "Server.InsufficientInstanceCapacity: Insufficient capacity to satisfy instance request",
    "Server.InsufficientInstanceCapacity",
)


class MotoEC2:
    def __init__(self, regions: Iterable[str] = ("us-east-1", "us-west-2")):
        self.regions = tuple(regions)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.proxy: AWSErrorProxy | None = None

    def start(self) -> MotoEC2:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto.start()
        self.proxy = AWSErrorProxy(self.moto_url).start()
        return self

    def stop(self) -> None:
        if self.proxy:
            self.proxy.stop()
        self._moto.stop()

    @property
    def moto_url(self) -> str:
        host, port = self._moto.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def endpoint_url(self) -> str:
        assert self.proxy is not None, "start() first"
        return self.proxy.url

    def clear(self) -> None:
        """Forget refusals and recorded calls; moto's instances and groups stay."""
        assert self.proxy is not None
        self.proxy.clear()

    def client(self, region: str, service: str = "ec2") -> Any:
        """A boto3 client straight to moto: the test's own view, never refused."""
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.moto_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def refuse_capacity(self, location: Location) -> None:
        self.refuse(location, "InsufficientInstanceCapacity")

    def exceed_quota(self, location: Location) -> None:
        self.refuse(location, "VcpuLimitExceeded")

    def refuse(self, location: Location, code: str) -> None:
        assert self.proxy is not None
        self.proxy.refuse(code, zone=location.zone)

    def reject_credentials(self) -> None:
        assert self.proxy is not None
        self.proxy.reject_credentials()

    def preempt(self, instance_id: str) -> None:
        self._end(instance_id, SPOT_TERMINATION)

    def shut_down_from_inside(self, instance_id: str) -> None:
        """The VM ran `shutdown -h` (ours terminate on shutdown)."""
        self._end(instance_id, SELF_SHUTDOWN)

    def end_for_capacity_at_launch(self, instance_id: str) -> None:
        """EC2 accepted the launch, then ended the instance for lack of capacity."""
        self._end(instance_id, NO_CAPACITY_AT_LAUNCH)

    def terminate_outside_spotserve(self, instance_id: str) -> None:
        """Someone called TerminateInstances (moto records Client.UserInitiatedShutdown)."""
        self._end(instance_id, None)

    def _end(self, instance_id: str, reason: StateReason | None) -> None:
        instance = self._backend_instance(instance_id)
        instance.terminate()
        if reason is not None:
            instance.state_reason = reason

    def tags_of(self, instance_id: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.describe(instance_id).get("Tags", [])}

    def describe(self, instance_id: str) -> dict[str, Any]:
        region = self._backend_instance(instance_id).region_name
        reply = self.client(region).describe_instances(InstanceIds=[instance_id])
        return dict(reply["Reservations"][0]["Instances"][0])

    def _backend_instance(self, instance_id: str) -> Any:
        for region in self.regions:
            backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
            if instance_id in {i.id for i in backend.all_instances()}:
                return backend.get_instance(instance_id)
        raise KeyError(f"{instance_id} is in none of {self.regions}")
