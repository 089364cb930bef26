"""Cleanup phase of a tick: nothing the controller pays for is left without a live row.

- An ending row (failed, preempted, shutting down) whose instance may still exist has it
  terminated; shutting-down rows are then deleted, failed ones kept for diagnosis a while.
- A launch intent without an instance (the controller died mid-launch) adopts the tagged
  instance if the cloud has one, else is marked failed and the plan replaces it.
- A tagged instance with no live row is an orphan and is terminated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from provisioners.base import Instance, InstanceState, Provisioner
from provisioners.errors import ProvisionError
from replica_manager.clock import Clock
from replica_manager.failpoints import failpoint
from replica_manager.lifecycle import ALIVE, ENDING, TERMINAL_RETENTION_SECONDS
from replica_manager.records import ReplicaRecord
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

log = logging.getLogger(__name__)


@dataclass
class Cleaner:
    store: ReplicaStore
    provisioners: Mapping[str, Provisioner]
    clock: Clock
    pool: ThreadPoolExecutor
    retention_seconds: float = TERMINAL_RETENTION_SECONDS
    drain_seconds: float = 0.0

    def terminate_ending(self, service: str, *, teardown: bool = False) -> None:
        """Terminate ending replicas' instances. A replica scaled down keeps running for
        `drain_seconds` first, so load balancers stop sending to it (they learn at their
        next sync) and its in-flight requests finish. At teardown nothing waits, and failed
        rows go at once instead of being kept for diagnosis."""
        records = [r for r in self.store.replicas(service) if r.status in ENDING]
        list(self.pool.map(lambda r: self._finish(r, teardown), records))

    def _draining(self, record: ReplicaRecord) -> bool:
        return (
            record.status == S.SHUTTING_DOWN
            and self.clock.now() - record.status_changed_at < self.drain_seconds
        )

    def _finish(self, record: ReplicaRecord, teardown: bool) -> None:
        if not teardown and self._draining(record):
            return
        if record.terminated_at is None:
            failpoint("terminate.before_provider")
            if not self._terminate(record):
                return
            failpoint("terminate.after_provider")
            record = self.store.update(record, terminated_at=self.clock.now())
        if record.status == S.SHUTTING_DOWN:
            self.store.delete(record)
            self.store.event(
                record.service,
                "replica_terminated",
                f"replica {record.replica_id} terminated ({record.status_reason})",
                replica_id=record.replica_id,
            )
        elif teardown or self.clock.now() - record.status_changed_at > self.retention_seconds:
            self.store.delete(record)

    def _terminate(self, record: ReplicaRecord) -> bool:
        if not record.instance_id:
            return True
        prov = self.provisioners.get(record.location.cloud)
        if prov is None:
            log.error(
                "cannot terminate %s: cloud %s not enabled",
                record.instance_id,
                record.location.cloud,
            )
            return False
        try:
            prov.terminate(record.instance_id, record.location)
            return True
        except ProvisionError as exc:
            log.warning("terminate %s failed, will retry: %s", record.instance_id, exc)
            return False

    def reconcile_owned(self, service: str, clouds: Iterable[str]) -> None:
        """Adopt instances of interrupted launches and terminate orphans."""
        for cloud in clouds:
            prov = self.provisioners.get(cloud)
            if prov is None:
                continue
            try:
                owned = prov.list_owned(service)
            except ProvisionError as exc:
                log.warning("cannot list %s instances of %s: %s", cloud, service, exc)
                continue
            self._match(service, cloud, prov, owned)

    def _match(self, service: str, cloud: str, prov: Provisioner, owned: list[Instance]) -> None:
        rows = {r.launch_token: r for r in self.store.replicas(service)}
        for inst in owned:
            if inst.state == InstanceState.TERMINATED:
                continue
            row = rows.get(inst.launch_token)
            if row is not None and row.status in ALIVE:
                if row.instance_id is None:
                    self._adopt(row, inst)
                continue
            if (
                row is not None
                and row.instance_id == inst.instance_id
                and row.terminated_at is None
            ):
                continue  # an ending row still owns it; terminate_ending will take it
            self.store.event(
                service,
                "orphan_terminated",
                f"terminating {cloud} instance {inst.instance_id}: tagged for {service} "
                f"but no live replica owns it",
                data={"instance_id": inst.instance_id, "location": inst.location.key},
            )
            try:
                prov.terminate(inst.instance_id, inst.location)
            except ProvisionError as exc:
                log.warning("orphan %s not terminated yet: %s", inst.instance_id, exc)

    def _adopt(self, row: ReplicaRecord, inst: Instance) -> None:
        self.store.event(
            row.service,
            "replica_adopted",
            f"replica {row.replica_id}: found its instance {inst.instance_id} after a restart",
            replica_id=row.replica_id,
        )
        if row.status == S.PENDING:
            row = self.store.transition(row, S.PROVISIONING, "adopted after restart")
        self.store.update(row, instance_id=inst.instance_id, url=inst.url)

    def fail_lost_intents(self, service: str) -> None:
        """Intents still without an instance after `reconcile_owned` never reached a cloud."""
        for row in self.store.replicas(service):
            if row.status in (S.PENDING, S.PROVISIONING) and row.instance_id is None:
                self.store.transition(
                    row,
                    S.FAILED_PROVISION,
                    "launch interrupted (controller restart)",
                    terminated_at=self.clock.now(),
                )
