"""Desired state: create, update and take down services. These only write the database;
the reconcile loop makes the world follow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from common.clock import Clock
from controller.db import Database, ServiceRow, ServiceVersionRow
from controller.db.replica_store import add_event
from controller.lb_process import pick_port
from controller.service_status import ServiceStatus
from controller.settings import Settings
from controller.spec import ServiceSpec


class ServiceExists(Exception):
    pass


class ServiceNotFound(Exception):
    pass


def find(session: Session, name: str) -> ServiceRow | None:
    return session.scalars(select(ServiceRow).where(ServiceRow.name == name)).one_or_none()


def get_or_404(session: Session, name: str) -> ServiceRow:
    row = find(session, name)
    if row is None:
        raise ServiceNotFound(name)
    return row


@dataclass(frozen=True)
class VersionView:
    spec: ServiceSpec
    bundle_digest: str | None
    redacted: dict[str, Any]
    """The spec as the API shows it (secrets replaced), made once per version."""
    update_mode: str = "rolling"
    max_surge: int | None = None


def _view_of(version: ServiceVersionRow) -> VersionView:
    spec = ServiceSpec.model_validate(version.spec)
    return VersionView(
        spec, version.bundle_digest, spec.redacted(), version.update_mode, version.max_surge
    )


_PARSED: dict[tuple[int, int, float], VersionView] = {}
_PARSED_MAX = 8192
"""Parsed versions kept: far more than the services one controller runs (a listing of
1,000 services must not parse a spec again each time)."""


def _remember(key: tuple[int, int, float], view: VersionView) -> VersionView:
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[key] = view
    return view


def latest_version(row: ServiceRow) -> VersionView:
    """The spec and bundle of the service's current version. Version rows never change,
    so each is parsed once per process: the reconcile tick and the load balancer sync ask
    often, and read only the version's key columns when it is known."""
    session = object_session(row)
    assert session is not None, "latest_version needs a row attached to a session"
    table = ServiceVersionRow.__table__
    vid, version, created_at = session.execute(
        select(table.c.id, table.c.version, table.c.created_at).where(
            table.c.service_id == row.id, table.c.version == row.version
        )
    ).one()
    key = (vid, version, created_at)
    view = _PARSED.get(key)
    if view is None:
        view = _remember(key, _view_of(session.get_one(ServiceVersionRow, vid)))
    return view


def latest_spec(row: ServiceRow) -> ServiceSpec:
    return latest_version(row).spec


def latest_versions(session: Session, rows: Sequence[Any]) -> dict[int, VersionView]:
    """`latest_version` of many services in one query (a listing must not ask per row); a
    spec is read and parsed only for a version not seen before."""
    if not rows:
        return {}
    current = {(r.id, r.version) for r in rows}
    table = ServiceVersionRow.__table__
    out: dict[int, VersionView] = {}
    missing: dict[int, tuple[int, int, float]] = {}
    for vid, service_id, version, created_at in session.execute(
        select(table.c.id, table.c.service_id, table.c.version, table.c.created_at).where(
            table.c.service_id.in_([r.id for r in rows])
        )
    ).all():
        if (service_id, version) not in current:
            continue
        view = _PARSED.get((vid, version, created_at))
        if view is None:
            missing[vid] = (service_id, version, created_at)
        else:
            out[service_id] = view
    if missing:
        for version_row in session.scalars(
            select(ServiceVersionRow).where(ServiceVersionRow.id.in_(list(missing)))
        ).all():
            service_id, version, created_at = missing[version_row.id]
            key = (version_row.id, version, created_at)
            out[service_id] = _remember(key, _view_of(version_row))
    return out


def create_service(
    db: Database,
    settings: Settings,
    clock: Clock,
    name: str,
    spec: ServiceSpec,
    bundle_digest: str | None = None,
) -> ServiceRow:
    now = clock.now()
    with db.session() as s:
        if find(s, name) is not None:
            raise ServiceExists(name)
        taken = [p for p in s.scalars(select(ServiceRow.lb_port)).all() if p]
        row = ServiceRow(
            name=name,
            status=ServiceStatus.CONTROLLER_INIT.value,
            status_reason="waiting for the controller to pick it up",
            version=1,
            created_at=now,
            updated_at=now,
            lb_port=pick_port(settings.lb_host, settings.lb_port_start, taken),
            next_replica_id=1,
            target_replicas=spec.service.policy.min_replicas,
            policy_state={},
            tick_state={},
        )
        row.versions.append(
            ServiceVersionRow(
                version=1,
                spec=spec.model_dump(mode="json"),
                created_at=now,
                bundle_digest=bundle_digest,
            )
        )
        s.add(row)
        add_event(s, name, "service_created", f"service {name} created (version 1)", now)
        try:
            s.flush()
        except IntegrityError:
            raise ServiceExists(name) from None
        return row


def request_down(db: Database, clock: Clock, name: str, purge: bool) -> bool:
    """Mark the service for teardown. With `purge`, forget it at once (returns True then)."""
    now = clock.now()
    with db.session() as s:
        row = get_or_404(s, name)
        if purge and row.status == ServiceStatus.FAILED_CLEANUP:
            add_event(s, name, "service_purged", "records purged after failed cleanup", now)
            s.delete(row)
            return True
        row.status = ServiceStatus.SHUTTING_DOWN.value
        row.status_reason = "terminating replicas and the load balancer"
        row.updated_at = now
        add_event(s, name, "service_down", f"service {name}: teardown requested", now)
        return False
