"""The replica lifecycle as one table, and the sets of statuses the rest of the code asks about.

PENDING -> PROVISIONING -> STARTING -> READY <-> NOT_READY -> SHUTTING_DOWN -> (row deleted),
with terminal failures kept visible for diagnosis until `TERMINAL_RETENTION_SECONDS` pass.
A replica whose cloud announced its preemption is DRAINING: out of the load balancers' lists
and replaced at once (it is not ALIVE), yet still HELD (its instance serves the requests in
flight, is paid for and is no orphan) until the cloud takes it or the notice runs out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from replica_manager.records import ReplicaRecord
from replica_manager.records import ReplicaStatus as S

TERMINAL_RETENTION_SECONDS = 15 * 60

FAILURES = frozenset(
    {S.FAILED_PROVISION, S.FAILED_INITIAL_DELAY, S.FAILED_PROBING, S.FAILED, S.PREEMPTED}
)
# Replicas that hold (or are about to hold) an instance we want.
ALIVE = frozenset({S.PENDING, S.PROVISIONING, S.STARTING, S.READY, S.NOT_READY})
# Replicas whose instance we keep for now: the alive ones and those draining.
HELD = ALIVE | {S.DRAINING}
# Replicas whose instance, if any, must be (or has been) terminated.
ENDING = FAILURES | {S.SHUTTING_DOWN}
# Failures that say the user's program is broken, not the cloud.
APP_FAILURES = frozenset({S.FAILED_INITIAL_DELAY, S.FAILED_PROBING, S.FAILED})

TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.FAILED_PROVISION, S.SHUTTING_DOWN}),
    S.PROVISIONING: frozenset(
        {S.STARTING, S.FAILED_PROVISION, S.PREEMPTED, S.FAILED, S.SHUTTING_DOWN, S.DRAINING}
    ),
    S.STARTING: frozenset(
        {S.READY, S.FAILED_INITIAL_DELAY, S.PREEMPTED, S.FAILED, S.SHUTTING_DOWN, S.DRAINING}
    ),
    S.READY: frozenset({S.NOT_READY, S.PREEMPTED, S.FAILED, S.SHUTTING_DOWN, S.DRAINING}),
    S.NOT_READY: frozenset(
        {S.READY, S.FAILED_PROBING, S.PREEMPTED, S.FAILED, S.SHUTTING_DOWN, S.DRAINING}
    ),
    S.DRAINING: frozenset({S.PREEMPTED, S.SHUTTING_DOWN}),
    S.SHUTTING_DOWN: frozenset(),
    **{failed: frozenset({S.SHUTTING_DOWN}) for failed in FAILURES},
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(current: S, new: S) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"replica cannot go from {current} to {new}")


def app_failure_streak(before: Mapping[int, S], after: Iterable[ReplicaRecord], streak: int) -> int:
    """Replicas that failed before ever being ready, in a row since one last got ready
    (`before`: each row's status at the start of the tick; the service fails at a limit)."""
    for r in after:
        if r.status == S.READY and before.get(r.row_id) != S.READY:
            streak = 0
        elif r.status in APP_FAILURES and before.get(r.row_id) not in ENDING and r.ready_at is None:
            streak += 1
    return streak
