"""`serve update`: a new version, rolled out the way the operator asked, relaunching only
what must be relaunched.

- What a replica runs with is its version's spec minus `service:` (but with
  `service.ports`), plus the code bundle: its *runtime*. A new version whose runtime equals
  an older version's adopts that version's live replicas (their version number moves, nothing
  is relaunched): an update that changes only counts, autoscaling, the probe or the load
  balancing policy, and a rollback to a version whose replicas still run.
- `rolling` (the default): new replicas first, old ones go as new ones get READY, with at
  most `max_surge` replicas above what the policy wants in steady state (default: a quarter
  of the target, at least 1; the surge is applied by the placement round).
- `blue_green`: the new version is launched in full; the load balancers keep sending every
  request to the old version until the new one has its whole target READY, then switch at
  once (controller/api/routes_lb.py), and the old replicas go.
- A version whose replicas fail before ever being READY stops launching after the failure
  streak while the old replicas keep serving; `serve update NAME --rollback` (or
  `--to-version K`) makes a new version from the last one that was READY.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any, Literal

from sqlalchemy import select

from common.clock import Clock
from controller.db import Database, ReplicaRow, ServiceRow, ServiceVersionRow
from controller.db.replica_store import add_event, bump_revision
from controller.service_status import ServiceStatus
from controller.services import ServiceNotFound, get_or_404
from controller.spec import ServiceSpec
from controller.tick_state import TickState
from replica_manager.lifecycle import HELD

UpdateMode = Literal["rolling", "blue_green"]
UPDATE_MODES: tuple[UpdateMode, ...] = ("rolling", "blue_green")


class NoVersionToRollBackTo(Exception):
    """No earlier version was ever READY (or the one asked for does not exist)."""


def runtime_key(spec: dict[str, Any], bundle_digest: str | None) -> str:
    """What a replica of this version runs with: equal keys mean a replica of one version is
    a replica of the other."""
    service = spec.get("service") or {}
    rest = {k: v for k, v in spec.items() if k not in ("service", "name")}
    return json.dumps([rest, service.get("ports"), bundle_digest], sort_keys=True)


def surge_for(target: int, max_surge: int | None) -> int:
    """Replicas a rolling update may run above the steady state."""
    return max_surge if max_surge is not None else max(1, math.ceil(target / 4))


def update_service(
    db: Database,
    clock: Clock,
    name: str,
    spec: ServiceSpec,
    bundle_digest: str | None = None,
    mode: UpdateMode = "rolling",
    max_surge: int | None = None,
    note: str = "",
) -> ServiceRow:
    now = clock.now()
    dumped = spec.model_dump(mode="json")
    with db.session() as s:
        row = get_or_404(s, name)
        if row.status in (ServiceStatus.SHUTTING_DOWN, ServiceStatus.FAILED_CLEANUP):
            raise ServiceNotFound(name)
        versions = list(
            s.scalars(select(ServiceVersionRow).where(ServiceVersionRow.service_id == row.id))
        )
        row.version += 1
        s.add(
            ServiceVersionRow(
                service_id=row.id,
                version=row.version,
                spec=dumped,
                created_at=now,
                bundle_digest=bundle_digest,
                update_mode=mode,
                max_surge=max_surge,
            )
        )
        row.updated_at = now
        state = TickState.from_json(row.tick_state)
        row.tick_state = replace(state, app_failure_streak=0).to_json()
        if row.status == ServiceStatus.FAILED:
            row.status = ServiceStatus.REPLICA_INIT.value
        key = runtime_key(dumped, bundle_digest)
        same = [v.version for v in versions if runtime_key(v.spec, v.bundle_digest) == key]
        kept = _adopt(s, row, same) if same else []
        how = (
            f"in place: replicas {', '.join(map(str, kept))} keep running"
            if kept
            else f"{mode.replace('_', '-')}"
        )
        add_event(
            s,
            name,
            "service_updated",
            f"service {name} updated to version {row.version}{note} ({how})",
            now,
            data={"version": row.version, "mode": mode, "kept_replicas": kept},
        )
        s.flush()
        return row


def _adopt(session: Any, row: ServiceRow, versions: list[int]) -> list[int]:
    """Move the live replicas of `versions` to the service's new version; their ids."""
    replicas = session.scalars(
        select(ReplicaRow).where(
            ReplicaRow.service_id == row.id,
            ReplicaRow.version.in_(versions),
            ReplicaRow.status.in_([s.value for s in HELD]),
        )
    ).all()
    for replica in replicas:
        replica.version = row.version
    if replicas:
        bump_revision(session, row.id)
    return sorted(r.replica_id for r in replicas)


def rollback_service(
    db: Database,
    clock: Clock,
    name: str,
    to_version: int | None = None,
    mode: UpdateMode = "rolling",
) -> ServiceRow:
    """A new version made of an earlier one: `to_version`, else the newest version before the
    current one that was ever READY."""
    with db.session() as s:
        row = get_or_404(s, name)
        versions = {
            v.version: v
            for v in s.scalars(
                select(ServiceVersionRow).where(ServiceVersionRow.service_id == row.id)
            )
        }
        if to_version is not None:
            chosen = versions.get(to_version)
            if chosen is None:
                raise NoVersionToRollBackTo(
                    f"service {name} has no version {to_version} "
                    f"(it has {', '.join(map(str, sorted(versions)))})"
                )
        else:
            ready = [v for n, v in versions.items() if n < row.version and v.ready_at]
            if not ready:
                raise NoVersionToRollBackTo(
                    f"no version of {name} before version {row.version} was ever READY; "
                    f"name one with `serve update {name} --to-version K`"
                )
            chosen = max(ready, key=lambda v: v.version)
        spec = ServiceSpec.model_validate(chosen.spec)
        bundle, back_to = chosen.bundle_digest, chosen.version
    return update_service(
        db, clock, name, spec, bundle, mode, note=f" (a rollback to version {back_to})"
    )


def serving(ready: list[tuple[str, int]], version: int, mode: str, target: int) -> list[str]:
    """The READY replicas (url, version) the load balancers send requests to. Blue-green:
    the older versions keep every request until the current one has its whole target READY,
    then it takes them all at once; rolling: all of them."""
    if mode != "blue_green":
        return [url for url, _ in ready]
    new = [url for url, v in ready if v >= version]
    old = [url for url, v in ready if v < version]
    if old and len(new) < max(1, target):
        return old
    return new or old
