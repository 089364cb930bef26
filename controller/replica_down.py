"""One replica ended at the operator's request (`serve down NAME --replica-id N [--purge]`).

It ends the way the controller ends any replica: its row goes SHUTTING_DOWN with a reason
naming the request, in one transaction with its event (`ReplicaStore.transition`); the
service's next tick drains it (`SERVE_DRAIN_SECONDS`), terminates its instance and deletes
the row (`Cleaner.terminate_ending`), and the placement round launches a replacement if the
target still wants one. Nothing here calls a cloud, except for `--purge`.

`--purge` is for an instance the cloud will not let go of: one terminate call made here
(if this controller leads), then the row is deleted whatever the answer. An instance left
behind keeps its tags, so the service's orphan scan terminates it while the service lives
(`Cleaner.reconcile_owned`: a tagged instance without a live row is an orphan), and an
operator can find it by them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from provisioners.base import TAG_LAUNCH_TOKEN, TAG_REPLICA_ID, TAG_SERVICE, Provisioner
from provisioners.errors import ProvisionError
from replica_manager.lifecycle import IllegalTransition
from replica_manager.records import ReplicaRecord
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

log = logging.getLogger(__name__)


class NoSuchReplica(Exception):
    def __init__(self, service: str, replica_id: int):
        super().__init__(
            f"service {service} has no replica {replica_id}; "
            f"`serve status {service}` lists its replicas"
        )


@dataclass(frozen=True)
class Ended:
    """What became of the replica: SHUTTING_DOWN (the tick finishes it) or PURGED."""

    service: str
    replica_id: int
    status: str
    detail: str
    instance_id: str | None
    location: str
    terminated: bool | None = None
    """With --purge: whether the cloud said the instance is gone (None: not asked)."""
    tags: dict[str, str] = field(default_factory=dict)


def end_replica(
    store: ReplicaStore, service: str, replica_id: int, *, purge: bool
) -> ReplicaRecord:
    """The replica's row, SHUTTING_DOWN with the operator's reason (unchanged if it
    already was)."""
    record = _find(store, service, replica_id)
    if record.status == S.SHUTTING_DOWN:
        return record
    flag = " --purge" if purge else ""
    reason = f"requested by the operator (serve down {service} --replica-id {replica_id}{flag})"
    try:
        return store.transition(record, S.SHUTTING_DOWN, reason)
    except IllegalTransition:  # the tick ended it in the meantime
        return _find(store, service, replica_id)


def shutting_down(record: ReplicaRecord) -> Ended:
    detail = (
        f"Replica {record.replica_id} of {record.service} is shutting down "
        f"({record.status_reason}); its instance is terminated after the drain."
    )
    return Ended(
        record.service,
        record.replica_id,
        S.SHUTTING_DOWN.value,
        detail,
        record.instance_id,
        record.location.key,
    )


def purge(
    store: ReplicaStore,
    provisioners: Mapping[str, Provisioner],
    leading: Callable[[], bool],
    record: ReplicaRecord,
) -> Ended:
    """One attempt to terminate the instance, then the row is forgotten."""
    terminated, outcome = _terminate_once(provisioners, leading, record)
    store.delete(record)
    tags = {
        TAG_SERVICE: record.service,
        TAG_REPLICA_ID: str(record.replica_id),
        TAG_LAUNCH_TOKEN: record.launch_token,
    }
    found_by = " ".join(f"{k}={v}" for k, v in tags.items())
    store.event(
        record.service,
        "replica_purged",
        f"replica {record.replica_id} forgotten at the operator's request: {outcome}"
        + ("" if terminated or not record.instance_id else f"; its tags: {found_by}"),
        replica_id=record.replica_id,
        data={"instance_id": record.instance_id, "location": record.location.key},
    )
    detail = f"Replica {record.replica_id} of {record.service} is forgotten: {outcome}."
    return Ended(
        record.service,
        record.replica_id,
        "PURGED",
        detail,
        record.instance_id,
        record.location.key,
        terminated,
        tags,
    )


def _terminate_once(
    provisioners: Mapping[str, Provisioner], leading: Callable[[], bool], record: ReplicaRecord
) -> tuple[bool | None, str]:
    """(whether the cloud says the instance is gone, what happened in words)."""
    instance, cloud = record.instance_id, record.location.cloud
    if not instance:
        return None, "it had no instance"
    if record.terminated_at is not None:
        return True, f"its instance {instance} was already terminated"
    prov = provisioners.get(cloud)
    if prov is None:
        return None, f"its instance {instance} is on {cloud}, which is not enabled here"
    if not leading():
        return None, f"this controller does not lead, so it did not terminate {instance}"
    try:
        gone = prov.terminate(instance, record.location)
    except ProvisionError as exc:
        log.warning("purge of %s replica %s: %s", record.service, record.replica_id, exc)
        return False, f"terminating its instance {instance} failed: {exc}"
    if gone:
        return True, f"its instance {instance} is terminated"
    return False, f"{cloud} accepted the termination of {instance} but has not finished it"


def _find(store: ReplicaStore, service: str, replica_id: int) -> ReplicaRecord:
    found = [r for r in store.replicas(service) if r.replica_id == replica_id]
    if not found:
        raise NoSuchReplica(service, replica_id)
    return found[0]
