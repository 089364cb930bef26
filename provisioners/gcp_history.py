"""What Compute Engine's zone operations say about one instance. Pure: no I/O.

Compute Engine keeps a zone operation for every change to an instance, listed by
`zoneOperations.list` with a filter on `targetLink` (the instance's URL). Three of them
matter to spotserve:

- `insert`: the launch. Still running: the instance may not be visible yet. Ended with
  `error.errors[]` (ZONE_RESOURCE_POOL_EXHAUSTED, QUOTA_EXCEEDED...): Compute Engine accepted
  the request, then refused it; no instance exists.
- `compute.instances.preempted`: the cloud reclaimed a Spot VM ("Detect if a Spot VM was
  preempted" in the Spot VMs guide lists exactly these operations).
- anything else (`delete`, `stop`) tells nothing spotserve can rely on about who did it.

One `list` call answers all of it, so `get` of a missing instance costs one call here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from google.cloud import compute_v1

from provisioners.errors import ProvisionError
from provisioners.gcp_errors import from_operation_error

PREEMPTED_OPERATION = "compute.instances.preempted"
_DONE = compute_v1.Operation.Status.DONE


@dataclass(frozen=True)
class InstanceHistory:
    insert_done: bool | None
    """None: no insert operation is known (it aged out, or the name was never inserted)."""
    insert_errors: tuple[tuple[str, str], ...] = ()
    preempted: bool = False

    @classmethod
    def of(cls, operations: Iterable[compute_v1.Operation]) -> InstanceHistory:
        ops = list(operations)
        inserts = sorted(
            (op for op in ops if op.operation_type == "insert"), key=lambda op: op.insert_time
        )
        last = inserts[-1] if inserts else None
        return cls(
            insert_done=None if last is None else last.status == _DONE,
            insert_errors=()
            if last is None
            else tuple((e.code, e.message) for e in last.error.errors),
            preempted=any(op.operation_type == PREEMPTED_OPERATION for op in ops),
        )

    @property
    def insert_pending(self) -> bool:
        return self.insert_done is False

    def refusal(self, where: str) -> ProvisionError | None:
        """The error `launch` would have raised, if the insert ended in one."""
        if not self.insert_errors:
            return None
        return from_operation_error(
            [{"code": code, "message": message} for code, message in self.insert_errors], where
        )
