"""The one interface every cloud adapter implements, and the data it speaks.

Modelled on Karpenter's CloudProvider: a handful of methods with one-line contracts. Every
instance an adapter creates carries the tags in `ownership_tags`, so `list_owned` can find it
again after a crash and nothing is leaked.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from policies.types import Location, Offer

MANAGED_BY = "spotserve"
TAG_MANAGED_BY = "serve-managed-by"
TAG_SERVICE = "serve-service"
TAG_REPLICA_ID = "serve-replica-id"
TAG_LAUNCH_TOKEN = "serve-launch-token"
TAG_CONTROLLER_ID = "serve-controller-id"
TAG_SPOT = "serve-spot"


@dataclass(frozen=True)
class Accelerator:
    name: str
    count: int

    def __str__(self) -> str:
        return f"{self.name}:{self.count}"


@dataclass(frozen=True)
class LocationFilter:
    """One allowed place from the YAML (`cloud`/`region`/`zone`); None means any."""

    cloud: str | None = None
    region: str | None = None
    zone: str | None = None

    def allows(self, location: Location) -> bool:
        return (
            (self.cloud is None or self.cloud == location.cloud)
            and (self.region is None or self.region == location.region)
            and (self.zone is None or self.zone == location.zone)
        )


@dataclass(frozen=True)
class ResourceRequest:
    """What a replica needs, as the adapters see it.

    `accelerators` lists the candidates (any one of them will do); empty means CPU only.
    `places` lists allowed locations (any one will do); empty means anywhere. `ordered`
    keeps the YAML's order instead of sorting candidates by price.
    """

    accelerators: tuple[Accelerator, ...] = ()
    instance_type: str | None = None
    cpus: str | None = None
    memory: str | None = None
    disk_size: int | None = None
    image_id: str | None = None
    use_spot: bool = False
    places: tuple[LocationFilter, ...] = ()
    ordered: bool = False

    def allows(self, location: Location) -> bool:
        return not self.places or any(p.allows(location) for p in self.places)


@dataclass(frozen=True)
class LaunchRequest:
    """Everything needed to start one replica; `launch_token` is also its idempotency key."""

    service: str
    replica_id: int
    launch_token: str
    controller_id: str
    offer: Offer
    spot: bool
    port: int
    run: str
    setup: str | None = None
    envs: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold secrets
    workdir: str | None = None
    resources: ResourceRequest = field(default_factory=ResourceRequest)

    @property
    def location(self) -> Location:
        return self.offer.location

    def ownership_tags(self) -> dict[str, str]:
        return {
            TAG_MANAGED_BY: MANAGED_BY,
            TAG_SERVICE: self.service,
            TAG_REPLICA_ID: str(self.replica_id),
            TAG_LAUNCH_TOKEN: self.launch_token,
            TAG_CONTROLLER_ID: self.controller_id,
            TAG_SPOT: "true" if self.spot else "false",
        }


class InstanceState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PREEMPTED = "preempted"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Instance:
    """An adapter's view of one instance it owns."""

    instance_id: str
    location: Location
    spot: bool
    state: InstanceState
    service: str
    replica_id: int
    launch_token: str
    address: str | None = None
    port: int | None = None
    detail: str = ""

    @property
    def url(self) -> str | None:
        if not self.address or not self.port:
            return None
        return f"http://{self.address}:{self.port}"


@dataclass(frozen=True)
class CheckResult:
    """`serve check`'s answer for one cloud."""

    cloud: str
    usable: bool
    reason: str
    hint: str = ""


class Provisioner(Protocol):
    """One cloud. Raises only `provisioners.errors.ProvisionError` subclasses."""

    cloud: str

    def check(self) -> CheckResult:
        """Whether credentials are present and accepted, and what to do if not."""
        ...

    def offers(self, resources: ResourceRequest) -> list[Offer]:
        """The locations where `resources` can run, with hourly prices; empty if none."""
        ...

    def launch(self, request: LaunchRequest) -> Instance:
        """Start one tagged instance; returns once the cloud has accepted it."""
        ...

    def get(self, instance_id: str, location: Location) -> Instance | None:
        """The instance's current state, or None if the cloud no longer knows it."""
        ...

    def terminate(self, instance_id: str, location: Location) -> None:
        """Stop and delete the instance; succeeds if it is already gone."""
        ...

    def list_owned(self, service: str | None = None) -> list[Instance]:
        """Every instance tagged as ours (for one service, or all), in any live state."""
        ...
