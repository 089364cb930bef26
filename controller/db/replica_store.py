"""`ReplicaStore` on SQLAlchemy: each call is one transaction on the controller's database."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from typing import Any, Unpack

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from common.clock import Clock
from controller.db.engine import Database
from controller.db.models import EventRow, ReplicaRow, ServiceRow
from policies.types import Location
from replica_manager.lifecycle import ENDING, TRANSITIONS, check_transition
from replica_manager.records import ReplicaRecord, ReplicaStatus
from replica_manager.store import ReplicaChanges

EVENT_BY_STATUS = {
    ReplicaStatus.READY: "replica_ready",
    ReplicaStatus.NOT_READY: "replica_not_ready",
    ReplicaStatus.PREEMPTED: "replica_preempted",
    ReplicaStatus.FAILED: "replica_failed",
    ReplicaStatus.FAILED_PROBING: "replica_failed",
    ReplicaStatus.FAILED_INITIAL_DELAY: "replica_failed",
    ReplicaStatus.SHUTTING_DOWN: "replica_shutting_down",
    ReplicaStatus.STARTING: "replica_starting",
}


def to_record(row: Any, service: str) -> ReplicaRecord:
    """From an ORM row or a Core row of the replicas table (same attribute names)."""
    return ReplicaRecord(
        row_id=row.id,
        service=service,
        replica_id=row.replica_id,
        version=row.version,
        status=ReplicaStatus(row.status),
        status_reason=row.status_reason,
        status_changed_at=row.status_changed_at,
        launch_token=row.launch_token,
        spot=row.spot,
        location=Location(row.cloud, row.region, row.zone),
        instance_type=row.instance_type,
        price_per_hour=row.price_per_hour,
        on_demand_price_per_hour=row.on_demand_price_per_hour,
        created_at=row.created_at,
        instance_id=row.instance_id,
        url=row.url,
        launched_at=row.launched_at,
        ready_at=row.ready_at,
        probe_failures=row.probe_failures,
        terminated_at=row.terminated_at,
        agent_token=row.agent_token,
        agent_url=row.agent_url,
        agent_cert_sha256=row.agent_cert_sha256,
        job_sent_at=row.job_sent_at,
        log_offset=row.log_offset,
        drain_deadline=row.drain_deadline,
    )


COALESCE_WINDOW = 5
"""An event identical to one of the service's last few is counted on it, not written
again: a service stuck on one problem (or flapping between two) writes a row or two, not
one per tick."""


def add_event(
    session: Session,
    service: str,
    kind: str,
    message: str,
    at: float,
    replica_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Record an event, or count it on a recent identical one (same kind, message and
    replica: see `COALESCE_WINDOW`)."""
    recent = session.scalars(
        select(EventRow)
        .where(EventRow.service_name == service)
        .order_by(EventRow.id.desc())
        .limit(COALESCE_WINDOW)
    ).all()
    same = next(
        (e for e in recent if (e.kind, e.message, e.replica_id) == (kind, message, replica_id)),
        None,
    )
    if same is not None:
        same.count += 1
        same.last_at = at
        same.data = data or {}
        return
    session.add(
        EventRow(
            service_name=service,
            replica_id=replica_id,
            kind=kind,
            message=message,
            at=at,
            data=data or {},
            count=1,
        )
    )


def trim_events(session: Session, service: str, keep: int) -> int:
    """Delete all but the newest `keep` events of a service; returns how many went."""
    cutoff = session.scalars(
        select(EventRow.id)
        .where(EventRow.service_name == service)
        .order_by(EventRow.id.desc())
        .offset(keep)
        .limit(1)
    ).first()
    if cutoff is None:
        return 0
    result = session.execute(
        delete(EventRow).where(EventRow.service_name == service, EventRow.id <= cutoff)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def bump_revision(session: Session, service_id: int) -> None:
    """Tell listings the service's replicas changed (see `ServiceRow.replicas_revision`)."""
    session.execute(
        update(ServiceRow)
        .where(ServiceRow.id == service_id)
        .values(replicas_revision=ServiceRow.replicas_revision + 1)
    )


class SqlReplicaStore:
    def __init__(self, db: Database, clock: Clock):
        self.db = db
        self.clock = clock

    def replicas(
        self, service: str, statuses: Collection[ReplicaStatus] | None = None
    ) -> list[ReplicaRecord]:
        """Read with a Core query, not the ORM: a tick reads its replicas several times and
        builds frozen records from them anyway (a fleet's ticks spent most of their time in
        ORM object loading)."""
        table = ReplicaRow.__table__
        service_id = select(ServiceRow.id).where(ServiceRow.name == service).scalar_subquery()
        query = select(table).where(table.c.service_id == service_id).order_by(table.c.replica_id)
        if statuses is not None:
            query = query.where(table.c.status.in_([s.value for s in statuses]))
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [to_record(r, service) for r in rows]

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
        now = self.clock.now()
        with self.db.session() as s:
            svc = s.scalars(
                select(ServiceRow).where(ServiceRow.name == service).with_for_update()
            ).one()
            replica_id = svc.next_replica_id
            svc.next_replica_id += 1
            svc.replicas_revision += 1
            row = ReplicaRow(
                service_id=svc.id,
                replica_id=replica_id,
                version=version,
                status=ReplicaStatus.PENDING.value,
                status_reason="launch planned",
                status_changed_at=now,
                launch_token=secrets.token_hex(16),
                agent_token=secrets.token_hex(32),
                spot=spot,
                cloud=location.cloud,
                region=location.region,
                zone=location.zone,
                instance_type=instance_type,
                price_per_hour=price_per_hour,
                on_demand_price_per_hour=on_demand_price_per_hour,
                created_at=now,
                probe_failures=0,
            )
            s.add(row)
            market = "spot" if spot else "on-demand"
            add_event(
                s,
                service,
                "replica_launching",
                f"replica {replica_id}: launching {market} in {location}",
                now,
                replica_id,
                {"location": location.key, "spot": spot},
            )
            s.flush()
            return to_record(row, service)

    def transition(
        self,
        record: ReplicaRecord,
        status: ReplicaStatus,
        reason: str = "",
        **fields: Unpack[ReplicaChanges],
    ) -> ReplicaRecord:
        now = self.clock.now()
        with self.db.session() as s:
            row = s.get_one(ReplicaRow, record.row_id, with_for_update=True)
            current = ReplicaStatus(row.status)
            if (
                current != record.status
                and current in ENDING
                and status not in TRANSITIONS[current]
            ):
                # Ended since the caller read it (`serve down NAME --replica-id N` from the
                # API while a tick judged the replica): it stays ended.
                return to_record(row, record.service)
            check_transition(current, status)
            bump_revision(s, row.service_id)
            row.status = status.value
            row.status_reason = reason
            row.status_changed_at = now
            for key, value in fields.items():
                setattr(row, key, value)
            kind = EVENT_BY_STATUS.get(status)
            if kind:
                add_event(
                    s,
                    record.service,
                    kind,
                    f"replica {record.replica_id} {status.value}: {reason}"
                    if reason
                    else f"replica {record.replica_id} {status.value}",
                    now,
                    record.replica_id,
                    {"location": record.location.key, "spot": record.spot},
                )
            s.flush()
            return to_record(row, record.service)

    def update(self, record: ReplicaRecord, **fields: Unpack[ReplicaChanges]) -> ReplicaRecord:
        with self.db.session() as s:
            row = s.get_one(ReplicaRow, record.row_id)
            bump_revision(s, row.service_id)
            for key, value in fields.items():
                setattr(row, key, value)
            s.flush()
            return to_record(row, record.service)

    def delete(self, record: ReplicaRecord) -> None:
        with self.db.session() as s:
            row = s.get(ReplicaRow, record.row_id)
            if row is not None:
                bump_revision(s, row.service_id)
                s.delete(row)

    def event(
        self,
        service: str,
        kind: str,
        message: str,
        replica_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        with self.db.session() as s:
            add_event(s, service, kind, message, self.clock.now(), replica_id, data)
