"""The replica manager's window on the database, implemented by the controller.

Each method is one transaction. `transition` writes status, reason, time and an event
together and refuses moves the lifecycle table forbids, so no caller can skip a state.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol, TypedDict, Unpack

from policies.types import Location
from replica_manager.records import ReplicaRecord, ReplicaStatus


class ReplicaChanges(TypedDict, total=False):
    """The fields of a replica row other than its status that the replica manager sets;
    the type checker refuses any other name or type at every call."""

    instance_id: str
    url: str | None
    agent_url: str | None
    agent_token: str
    agent_cert_sha256: str
    launched_at: float
    ready_at: float
    terminated_at: float
    probe_failures: int
    last_probe_at: float
    job_sent_at: float
    log_offset: int
    drain_deadline: float


class ReplicaStore(Protocol):
    def replicas(
        self, service: str, statuses: Collection[ReplicaStatus] | None = None
    ) -> list[ReplicaRecord]:
        """Every replica row of the service (only those in `statuses`, if given), terminal
        ones included, by replica id."""
        ...

    def create_intent(
        self,
        service: str,
        version: int,
        location: Location,
        spot: bool,
        instance_type: str,
        price_per_hour: float,
        on_demand_price_per_hour: float,
    ) -> ReplicaRecord:
        """A PENDING row with a fresh replica id and launch token, committed before launch."""
        ...

    def transition(
        self,
        record: ReplicaRecord,
        status: ReplicaStatus,
        reason: str = "",
        **changes: Unpack[ReplicaChanges],
    ) -> ReplicaRecord: ...

    def update(self, record: ReplicaRecord, **changes: Unpack[ReplicaChanges]) -> ReplicaRecord:
        """Change fields other than the status (probe counters, instance id, url)."""
        ...

    def delete(self, record: ReplicaRecord) -> None: ...

    def event(
        self,
        service: str,
        kind: str,
        message: str,
        replica_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None: ...
