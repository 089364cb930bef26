"""The reconcile tick's one path to the service row (the replicas have `ReplicaStore`).

Each method is one transaction. A tick reads a `ServiceSnapshot` once, works on frozen
values, and writes back what changed: the placement policy's state, the tick state with
the status and cost, the load balancer it started, the end of a teardown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select, update

from common.clock import Clock
from controller.costs import hourly_rates
from controller.db.engine import Database
from controller.db.models import ServiceRow, ServiceVersionRow
from controller.db.replica_store import add_event
from controller.service_status import ServiceStatus, service_status
from controller.services import latest_version
from controller.spec import ServiceSpec
from controller.tick_state import TickState
from replica_manager.records import ReplicaRecord, ReplicaStatus

COST_EVERY_SECONDS = 30.0
"""How often an otherwise unchanged service row is written to add up its cost (the cost
accrues over the whole time since the last write, so nothing is lost by waiting)."""


@dataclass(frozen=True)
class SavedPolicy:
    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ServiceSnapshot:
    """The service row as a tick reads it, with its current version's spec."""

    name: str
    version: int
    status: ServiceStatus
    spec: ServiceSpec
    bundle_digest: str | None
    state: TickState
    policy: SavedPolicy
    lb_pid: int | None
    lb_port: int | None
    updated_at: float
    update_mode: str = "rolling"
    max_surge: int | None = None

    @property
    def going_down(self) -> bool:
        return self.status in (ServiceStatus.SHUTTING_DOWN, ServiceStatus.FAILED_CLEANUP)


class ServiceStore:
    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self.clock = clock

    def snapshot(self, name: str) -> ServiceSnapshot | None:
        with self.db.session() as s:
            row = _row(s, name)
            if row is None:
                return None
            view = latest_version(row)
            return ServiceSnapshot(
                name=name,
                version=row.version,
                status=ServiceStatus(row.status),
                spec=view.spec,
                bundle_digest=view.bundle_digest,
                state=TickState.from_json(row.tick_state),
                policy=SavedPolicy(row.policy_name, dict(row.policy_state or {})),
                lb_pid=row.lb_pid,
                lb_port=row.lb_port,
                updated_at=row.updated_at,
                update_mode=view.update_mode,
                max_surge=view.max_surge,
            )

    def save_policy(self, name: str, policy: SavedPolicy) -> None:
        with self.db.session() as s:
            row = _row(s, name)
            if row is not None:
                row.policy_name = policy.name
                row.policy_state = policy.data

    def save_tick(
        self,
        name: str,
        target: int,
        state: TickState,
        records: list[ReplicaRecord],
        failures_to_fail: int,
    ) -> None:
        """The service's status from its replicas, its target, its tick state, and what its
        instances cost since the last tick (and what on-demand would have)."""
        now = self.clock.now()
        with self.db.session() as s:
            row = _row(s, name)
            if row is None:
                return
            status, reason = service_status(
                ServiceStatus(row.status),
                records,
                target,
                state.app_failure_streak,
                failures_to_fail,
                state.lb_problem,
            )
            if status.value != row.status:
                add_event(
                    s,
                    name,
                    "service_status",
                    f"service {name} is {status.value}: {reason}",
                    now,
                    data={"status": status.value},
                )
            if status == ServiceStatus.READY and row.ready_since is None:
                row.ready_since = now
            state = _note_ready_version(s, row, state, records, now)
            new_state = state.to_json()
            changed = (status.value, reason, target, new_state) != (
                row.status,
                row.status_reason,
                row.target_replicas,
                row.tick_state,
            )
            if not changed and now - (row.cost_updated_at or 0.0) < COST_EVERY_SECONDS:
                return  # nothing to write: one row UPDATE per service per tick adds up
            row.status, row.status_reason = status.value, reason
            row.target_replicas = target
            row.tick_state = new_state
            _accrue_cost(row, records, now)

    def lb_started(self, name: str, pid: int, port: int) -> None:
        with self.db.session() as s:
            row = _row(s, name)
            if row is None:
                return
            row.lb_pid = pid
            add_event(
                s,
                name,
                "lb_started",
                f"load balancer started on port {port}",
                self.clock.now(),
                data={"pid": pid, "port": port},
            )

    def finish_teardown(self, name: str, clean: bool, left: int, deadline: float) -> bool:
        """Forget the service once its teardown is `clean`; past `deadline` seconds without,
        mark it FAILED_CLEANUP. True if the service row is gone."""
        now = self.clock.now()
        with self.db.session() as s:
            row = _row(s, name)
            if row is None:
                return True
            if clean:
                add_event(s, name, "service_deleted", f"service {name} is down", now)
                s.delete(row)
                return True
            if now - row.updated_at > deadline:
                what = f"{left} replicas" if left else "tagged instances"
                row.status = ServiceStatus.FAILED_CLEANUP.value
                row.status_reason = (
                    f"{what} could not be terminated; check the cloud console, "
                    "then `serve down --purge`"
                )
            return False

    def names(self) -> set[str]:
        with self.db.session() as s:
            return set(s.scalars(select(ServiceRow.name)).all())

    def bundle_digests(self) -> set[str]:
        """Every bundle a stored version still refers to."""
        with self.db.session() as s:
            digests = s.scalars(select(ServiceVersionRow.bundle_digest)).all()
            return {d for d in digests if d}


def _note_ready_version(
    session: Any, row: ServiceRow, state: TickState, records: list[ReplicaRecord], now: float
) -> TickState:
    """Record when a version first had a READY replica (what `--rollback` goes back to);
    one statement only on the tick where a newer version gets there."""
    ready = max((r.version for r in records if r.status == ReplicaStatus.READY), default=0)
    if ready <= state.ready_version:
        return state
    session.execute(
        update(ServiceVersionRow)
        .where(
            ServiceVersionRow.service_id == row.id,
            ServiceVersionRow.version == ready,
            ServiceVersionRow.ready_at.is_(None),
        )
        .values(ready_at=now)
    )
    return replace(state, ready_version=ready)


def _row(session: Any, name: str) -> ServiceRow | None:
    row: ServiceRow | None = session.scalars(
        select(ServiceRow).where(ServiceRow.name == name)
    ).one_or_none()
    return row


def _accrue_cost(row: ServiceRow, records: list[ReplicaRecord], now: float) -> None:
    hours = max(0.0, now - (row.cost_updated_at or now)) / 3600.0
    paying, on_demand = hourly_rates(records, row.target_replicas)
    row.cost_so_far += hours * paying
    row.on_demand_cost_so_far += hours * on_demand
    row.cost_updated_at = now
