"""The one function that says what state a service is in.

The reconcile tick calls it and stores the answer on the service row; the API, the CLI and
the load balancer's sync all read that stored answer, so they never disagree.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from replica_manager.lifecycle import ALIVE
from replica_manager.records import ReplicaRecord, ReplicaStatus


class ServiceStatus(enum.StrEnum):
    CONTROLLER_INIT = "CONTROLLER_INIT"
    REPLICA_INIT = "REPLICA_INIT"
    READY = "READY"
    NO_REPLICA = "NO_REPLICA"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    FAILED = "FAILED"
    FAILED_CLEANUP = "FAILED_CLEANUP"


STICKY = frozenset({ServiceStatus.SHUTTING_DOWN, ServiceStatus.FAILED_CLEANUP})

ENDPOINT_DOWN = "endpoint down: "
"""Leads the reason while the load balancer cannot start; the status still says what the
replicas are doing (they may all be READY behind an endpoint nobody can reach)."""


def endpoint_problem(reason: str) -> str | None:
    """Why the endpoint is down, read back from a stored reason (None: it is not)."""
    if not reason.startswith(ENDPOINT_DOWN):
        return None
    return reason[len(ENDPOINT_DOWN) :].split("; ", 1)[0]


def service_status(
    current: ServiceStatus,
    replicas: Sequence[ReplicaRecord],
    target: int,
    app_failure_streak: int,
    failure_limit: int,
    lb_problem: str = "",
) -> tuple[ServiceStatus, str]:
    if current in STICKY:
        return current, ""
    status, reason = _from_replicas(replicas, target, app_failure_streak, failure_limit)
    if lb_problem:
        return status, f"{ENDPOINT_DOWN}{lb_problem.replace('; ', ', ')}; {reason}"
    return status, reason


def _from_replicas(
    replicas: Sequence[ReplicaRecord], target: int, app_failure_streak: int, failure_limit: int
) -> tuple[ServiceStatus, str]:
    ready = sum(1 for r in replicas if r.status == ReplicaStatus.READY)
    alive = sum(1 for r in replicas if r.status in ALIVE)
    if ready and app_failure_streak >= failure_limit:
        return ServiceStatus.READY, (
            f"{ready} of {target} replicas ready; {app_failure_streak} newer replicas in a "
            f"row failed before becoming ready, so no more are launched (`serve logs`; after "
            f"a bad update, `serve update NAME --rollback` goes back)"
        )
    if ready:
        return ServiceStatus.READY, f"{ready} of {target} replicas ready"
    if app_failure_streak >= failure_limit:
        last = next(
            (r for r in reversed(replicas) if r.status not in ALIVE and r.status_reason), None
        )
        why = f": {last.status_reason}" if last else ""
        return ServiceStatus.FAILED, (
            f"{app_failure_streak} replicas in a row failed before becoming ready{why}; "
            f"not launching more until `serve update` (check `serve logs`)"
        )
    if target == 0 and alive == 0:
        return ServiceStatus.NO_REPLICA, "scaled to zero replicas"
    if alive == 0:
        return ServiceStatus.NO_REPLICA, "no replica is running; launching"
    return ServiceStatus.REPLICA_INIT, f"waiting for {target} replicas to become ready"
