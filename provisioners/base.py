"""The one interface every cloud adapter implements, and the data it speaks.

Modelled on Karpenter's CloudProvider: a handful of methods with one-line contracts. Every
instance an adapter creates carries the tags in `ownership_tags`, so `list_owned` can find it
again after a crash and nothing is leaked.

No method waits for a long-running cloud operation: `launch` returns once the cloud has
accepted the request and `terminate` once the deletion has started, and the replica manager
observes the outcome on later ticks (`get`, `list_owned`, `terminate` again). Every SDK call
has connect and read timeouts, so a hung cloud costs a bounded wait, never a stuck tick.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from policies.types import Location, Offer
from provisioners.errors import ProvisionError

MANAGED_BY = "spotserve"
TAG_MANAGED_BY = "serve-managed-by"
TAG_SERVICE = "serve-service"
TAG_REPLICA_ID = "serve-replica-id"
TAG_LAUNCH_TOKEN = "serve-launch-token"
TAG_CONTROLLER_ID = "serve-controller-id"
TAG_SPOT = "serve-spot"
TAG_PORT = "serve-port"
"""The replica's service port, so an instance found by a scan can be probed."""
TAG_LOCATION = "serve-location"
"""`cloud/region/zone` on resources whose API does not say where they are (a GCP
firewall rule, an Azure NIC)."""
TAG_AGENT_PORT = "serve-agent-port"
"""The agent port an instance booted with: a later change of SERVE_AGENT_PORT does not
lose the way to older replicas."""
TAG_TERMINATED_BY = "serve-terminated-by"
"""Set to `spotserve` on an AWS instance just before spotserve terminates it (so its end is
not read as lost)."""
TAG_CREATED_AT = "serve-created-at"
"""On an AWS security group: when it was made (the sweep leaves young ones alone)."""
TAG_VM_STATE = "serve-vm-state"
"""On an Azure NIC: how far its VM got (pending, created, deleting); the NIC outlives it."""

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
"""Every SDK call's connect and read timeouts: a cloud that hangs costs this, not a tick."""
VISIBILITY_GRACE_SECONDS = 120.0
"""How long after a launch an instance may be missing from an eventually consistent API
(EC2 answers `InvalidInstanceID.NotFound` for a while after RunInstances) before its
absence means it is gone."""


AGENT_PORT = 46592
"""Default TLS port of the replica agent; adapters open it only to `controller_cidr`."""


def controller_cidr(env: Mapping[str, str]) -> str:
    """Who may reach a replica's agent port: `SERVE_CONTROLLER_CIDR` (the controller's
    public address), by default the same as `ingress_cidr`."""
    return env.get("SERVE_CONTROLLER_CIDR") or ingress_cidr(env)


def agent_port(env: Mapping[str, str]) -> int:
    return int(env.get("SERVE_AGENT_PORT") or AGENT_PORT)


def ingress_cidr(env: Mapping[str, str]) -> str:
    """Who may reach a replica's service port on every cloud: `SERVE_INGRESS_CIDR`
    (`SERVE_AWS_INGRESS_CIDR`, its older AWS-only name, still works). The load balancer
    and the controller's probes must be inside it."""
    return env.get("SERVE_INGRESS_CIDR") or env.get("SERVE_AWS_INGRESS_CIDR") or "0.0.0.0/0"


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
class Bundle:
    """A version's packed `workdir` and local `file_mounts` on the controller's disk: a
    deterministic tar.gz named by its SHA-256 (layout in docs/cloud-replicas.md)."""

    digest: str
    path: Path
    size: int


@dataclass(frozen=True)
class BucketMount:
    """A `file_mounts` entry copied from object storage onto the replica at boot."""

    target: str
    source: str
    """`s3://bucket/key`, `gs://bucket/key`, `https://...` (Azure Blob URLs included)."""


@dataclass(frozen=True)
class LaunchRequest:
    """Everything needed to start one replica; `launch_token` is also its idempotency key.

    `envs`, `secrets`, `setup`, `run` and the bucket mounts are the replica's *job*: on a
    VM they reach the replica's agent over its authenticated TLS port after boot, never in
    user data, metadata, tags or labels (`agent_token` authenticates that exchange)."""

    service: str
    replica_id: int
    launch_token: str
    controller_id: str
    offer: Offer
    spot: bool
    port: int
    run: str
    setup: str | None = None
    envs: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    workdir: str | None = None
    """Where the workdir came from on the operator's machine (display only)."""
    resources: ResourceRequest = field(default_factory=ResourceRequest)
    bundle: Bundle | None = None
    bucket_mounts: tuple[BucketMount, ...] = ()
    agent_token: str = field(default="", repr=False)

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
    """What the cloud says of one instance; the replica manager decides what it means.

    PENDING     accepted, not running yet
    RUNNING     running (its program may or may not answer yet: that is the probe's job)
    PREEMPTED   the cloud took it away (spot reclaim, eviction), by the cloud's own record
    REFUSED     the cloud accepted the launch, then could not create it (capacity or quota
                found out after the request returned); `Instance.error` says why
    LOST        gone for a reason that is neither its program's nor ours: deleted outside
                spotserve, or vanished without a preemption record. Never an app failure.
    TERMINATED  its program ended it (a process or pod that exited, a VM that shut itself
                down), or spotserve terminated it
    UNKNOWN     a state the adapter cannot read; looked at again next tick
    """

    PENDING = "pending"
    RUNNING = "running"
    PREEMPTED = "preempted"
    REFUSED = "refused"
    LOST = "lost"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PreemptionNotice:
    """The cloud's warning that it will take a running spot instance: AWS's instance action
    (two minutes ahead), GCE's `preempted` flag and Azure's `Preempt` scheduled event (about
    30 s), the local market's `--notice`."""

    deadline: float
    """When the cloud takes the instance (seconds since the epoch)."""
    detail: str = ""
    seen_at: float = 0.0


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
    controller_id: str = ""
    """The installation that launched it (tag `serve-controller-id`); '' if untagged."""
    error: ProvisionError | None = field(default=None, compare=False)
    """Why a REFUSED instance was refused, as the error `launch` would have raised."""
    agent_port: int | None = None
    """The replica agent's TLS port, for clouds whose replicas run the agent."""
    notice: PreemptionNotice | None = None
    """A RUNNING instance the cloud has announced it will take (adapters that can see it)."""

    @property
    def url(self) -> str | None:
        if not self.address or not self.port:
            return None
        return f"http://{self.address}:{self.port}"

    @property
    def agent_url(self) -> str | None:
        if not self.address or not self.agent_port:
            return None
        return f"https://{self.address}:{self.agent_port}"


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
        """Start one tagged instance; returns once the cloud has accepted the request (a
        refusal found out later is reported by `get` as REFUSED)."""
        ...

    def get(self, instance_id: str, location: Location) -> Instance | None:
        """The instance's current state, or None if the cloud does not know it (yet: right
        after `launch` an eventually consistent API may not show it)."""
        ...

    def terminate(self, instance_id: str, location: Location) -> bool:
        """Start deleting the instance and everything made for it, always by id (a cloud
        that does not show it yet may still have it). True once all of it is gone (or
        left to the adapter's own sweep, like AWS security groups, which EC2 keeps while
        the instance shuts down), False while deletion is under way: call again on a later
        tick. Idempotent."""
        ...

    def release(self, service: str) -> bool:
        """Delete what the adapter keeps for the service besides its instances (its
        bundles in the cloud's object store); True once nothing is left. Idempotent;
        called when the service goes down, after its instances are gone."""
        ...

    def list_owned(
        self, service: str | None = None, regions: Collection[str] | None = None
    ) -> list[Instance]:
        """Every instance tagged as ours (for one service, or all) that still has something
        to delete, whatever its state; a tagged leftover of a gone instance (a firewall
        rule, a NIC) is listed as that instance. `regions` narrows the search where the
        cloud lists per region. Only a full scan (no service, no regions) may also clean
        the adapter's own leftovers (e.g. AWS security groups): per-tick calls stay few."""
        ...
