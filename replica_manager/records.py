"""What the replica manager reads and writes, as frozen data.

The controller owns the database; the replica manager sees rows through these records and
changes them only through a `ReplicaStore`. `ReplicaTemplate` is everything about the
service that a launch or a probe needs, cut out of the service spec by the controller.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.types import Location
from provisioners.base import BucketMount, Bundle, ResourceRequest


class ReplicaStatus(enum.StrEnum):
    PENDING = "PENDING"
    PROVISIONING = "PROVISIONING"
    STARTING = "STARTING"
    READY = "READY"
    NOT_READY = "NOT_READY"
    DRAINING = "DRAINING"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    FAILED_PROVISION = "FAILED_PROVISION"
    FAILED_INITIAL_DELAY = "FAILED_INITIAL_DELAY"
    FAILED_PROBING = "FAILED_PROBING"
    FAILED = "FAILED"
    PREEMPTED = "PREEMPTED"


@dataclass(frozen=True)
class ProbeSpec:
    path: str
    port: int
    initial_delay_seconds: float
    timeout_seconds: float
    post_data: str | dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplicaTemplate:
    """How to start and check one replica of one service version."""

    service: str
    version: int
    run: str
    port: int
    probe: ProbeSpec
    setup: str | None = None
    envs: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    workdir: str | None = None
    resources: tuple[ResourceRequest, ...] = (ResourceRequest(),)
    bundle: Bundle | None = None
    bucket_mounts: tuple[BucketMount, ...] = ()


@dataclass(frozen=True)
class ReplicaRecord:
    row_id: int
    service: str
    replica_id: int
    version: int
    status: ReplicaStatus
    status_reason: str
    status_changed_at: float
    launch_token: str
    spot: bool
    location: Location
    instance_type: str
    price_per_hour: float
    on_demand_price_per_hour: float
    created_at: float
    instance_id: str | None = None
    url: str | None = None
    launched_at: float | None = None
    ready_at: float | None = None
    probe_failures: int = 0
    terminated_at: float | None = None
    agent_token: str = field(default="", repr=False)
    agent_url: str | None = None
    agent_cert_sha256: str | None = None
    job_sent_at: float | None = None
    log_offset: int = 0
    drain_deadline: float | None = None
    """When the cloud said it takes the instance (a preemption notice); None otherwise."""
