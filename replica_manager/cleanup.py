"""Cleanup phase of a tick: nothing the controller pays for is left without a live row.

- An ending row (failed, preempted, shutting down) whose instance may still exist has it
  terminated, call after call until the cloud says all of it is gone (a cloud that no
  longer knows the instance `VISIBILITY_GRACE_SECONDS` after its launch counts as gone);
  shutting-down rows are then deleted, failed ones kept for diagnosis a while.
- A launch intent without an instance (the controller died mid-launch) adopts the tagged
  instance if the cloud has one, else is marked failed and the plan replaces it; an intent
  whose launch call is still running is left alone.
- A tagged instance of this installation with no live row is an orphan and is terminated,
  whatever its state. Instances tagged by another installation are never touched.
- A service is forgotten only after every enabled cloud was searched by tag for its
  instances and none is left (`sweep_service`); `sweep_installation` terminates instances
  of services that no longer exist.

Terminations are `InFlight` calls (see `execute.py`): a slow cloud delays no tick, and the
fence is checked before each one, so a deposed leader terminates nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from common.clock import Clock
from provisioners.base import VISIBILITY_GRACE_SECONDS, Instance, Provisioner
from provisioners.errors import ProvisionError
from replica_manager.execute import always_leading
from replica_manager.failpoints import failpoint
from replica_manager.in_flight import InFlight
from replica_manager.lifecycle import ENDING, HELD, TERMINAL_RETENTION_SECONDS
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
    controller_id: str = ""
    fence: Callable[[], bool] = always_leading
    wait_seconds: float = 10.0
    visibility_grace: float = VISIBILITY_GRACE_SECONDS
    _terminations: InFlight[int, None] = field(init=False)

    def __post_init__(self) -> None:
        self._terminations = InFlight(self.pool)

    def terminate_ending(self, service: str, *, teardown: bool = False) -> None:
        """Terminate ending replicas' instances. A replica scaled down keeps running for
        `drain_seconds` first, so load balancers stop sending to it (they learn at their
        next sync) and its in-flight requests finish. At teardown nothing waits, and failed
        rows go at once instead of being kept for diagnosis."""
        started = set()
        for record in self.store.replicas(service, ENDING):
            if not teardown and self._draining(record):
                continue
            self._terminations.start(record.row_id, partial(self._finish, record, teardown))
            started.add(record.row_id)
        self._terminations.wait(started, self.wait_seconds)
        self._terminations.collect(started)

    def _draining(self, record: ReplicaRecord) -> bool:
        return (
            record.status == S.SHUTTING_DOWN
            and self.clock.now() - record.status_changed_at < self.drain_seconds
        )

    def _finish(self, record: ReplicaRecord, teardown: bool) -> None:
        try:
            self._finish_record(record, teardown)
        except Exception:  # runs off the tick: log, and the next tick tries again
            log.exception("cleanup of %s replica %s failed", record.service, record.replica_id)

    def _finish_record(self, record: ReplicaRecord, teardown: bool) -> None:
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
        """Whether everything of the record's instance is gone (after asking once more)."""
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
        if not self.fence():
            return False
        try:
            if prov.terminate(record.instance_id, record.location):
                return True
            return self._never_seen(prov, record)
        except ProvisionError as exc:
            log.warning("terminate %s failed, will retry: %s", record.instance_id, exc)
            return False

    def _never_seen(self, prov: Provisioner, record: ReplicaRecord) -> bool:
        """A cloud that still does not know the instance long after its launch never will."""
        assert record.instance_id
        launched = record.launched_at or record.created_at
        if self.clock.now() - launched < self.visibility_grace:
            return False
        return prov.get(record.instance_id, record.location) is None

    # -- instances without rows ----------------------------------------------------------

    def reconcile_owned(
        self,
        service: str,
        clouds: Iterable[str],
        in_flight: set[str] | None = None,
        regions: Mapping[str, set[str]] | None = None,
    ) -> None:
        """Adopt instances of interrupted launches and terminate orphans, searching only
        `regions` (per cloud) when given; a cloud without regions there is not searched."""
        for cloud in clouds:
            prov = self.provisioners.get(cloud)
            if prov is None or (regions is not None and not regions.get(cloud)):
                continue
            where = sorted(regions[cloud]) if regions is not None else None
            try:
                owned = [i for i in prov.list_owned(service, regions=where) if self._ours(i)]
            except ProvisionError as exc:
                log.warning("cannot list %s instances of %s: %s", cloud, service, exc)
                continue
            self._match(service, cloud, prov, owned, in_flight or set())

    def _ours(self, inst: Instance) -> bool:
        return inst.controller_id == self.controller_id

    def _match(
        self,
        service: str,
        cloud: str,
        prov: Provisioner,
        owned: list[Instance],
        in_flight: set[str],
    ) -> None:
        rows = {r.launch_token: r for r in self.store.replicas(service)}
        for inst in owned:
            if inst.launch_token in in_flight:
                continue  # its launch call is still running and will record it
            row = rows.get(inst.launch_token)
            if row is not None and row.status in HELD:
                if row.instance_id is None:
                    self._adopt(row, inst)
                continue
            if (
                row is not None
                and row.instance_id == inst.instance_id
                and row.terminated_at is None
            ):
                continue  # an ending row still owns it; terminate_ending will take it
            self._terminate_orphan(service, cloud, prov, inst)

    def _terminate_orphan(
        self, service: str, cloud: str, prov: Provisioner, inst: Instance
    ) -> bool:
        """Terminate an instance no live row owns; True once all of it is gone."""
        self.store.event(
            service,
            "orphan_terminated",
            f"terminating {cloud} instance {inst.instance_id} ({inst.state.value}): tagged "
            f"for {service} but no live replica owns it",
            data={"instance_id": inst.instance_id, "location": inst.location.key},
        )
        if not self.fence():
            return False
        try:
            return prov.terminate(inst.instance_id, inst.location)
        except ProvisionError as exc:
            log.warning("orphan %s not terminated yet: %s", inst.instance_id, exc)
            return False

    def _adopt(self, row: ReplicaRecord, inst: Instance) -> None:
        self.store.event(
            row.service,
            "replica_adopted",
            f"replica {row.replica_id}: found its instance {inst.instance_id} after a restart",
            replica_id=row.replica_id,
        )
        if row.status == S.PENDING:
            row = self.store.transition(row, S.PROVISIONING, "adopted after restart")
        self.store.update(row, instance_id=inst.instance_id, url=inst.url, agent_url=inst.agent_url)

    def fail_lost_intents(self, service: str, in_flight: set[str] | None = None) -> None:
        """Intents still without an instance after `reconcile_owned` never reached a cloud
        (unless their launch call is still running)."""
        running = in_flight or set()
        for row in self.store.replicas(service):
            if (
                row.status in (S.PENDING, S.PROVISIONING)
                and row.instance_id is None
                and row.launch_token not in running
            ):
                self.store.transition(
                    row,
                    S.FAILED_PROVISION,
                    "launch interrupted (controller restart)",
                    terminated_at=self.clock.now(),
                )

    # -- whole services and the whole installation ---------------------------------------

    def sweep_service(self, service: str) -> bool:
        """Search every enabled cloud by tag for the service's instances and terminate
        them; True only when every cloud answered and none has any left."""
        clean = True
        for cloud, prov in self.provisioners.items():
            try:
                owned = [i for i in prov.list_owned(service) if self._ours(i)]
            except ProvisionError as exc:
                log.warning("teardown of %s: cannot search %s: %s", service, cloud, exc)
                clean = False
                continue
            for inst in owned:
                self._terminate_orphan(service, cloud, prov, inst)
            clean = clean and not owned
        return clean

    def release(self, service: str) -> bool:
        """Every cloud deletes what it keeps for the service besides instances (bundles in
        its object store); True once all of them say nothing is left."""
        done = True
        for cloud, prov in self.provisioners.items():
            try:
                done = prov.release(service) and done
            except ProvisionError as exc:
                log.warning("teardown of %s: %s keeps objects for now: %s", service, cloud, exc)
                done = False
        return done

    def sweep_installation(self, live_services: Callable[[], set[str]]) -> int:
        """Terminate this installation's instances whose service no longer exists; returns
        how many were found. The services are read after the clouds are listed, so a
        service created meanwhile cannot lose an instance it just launched."""
        found: list[tuple[str, Provisioner, Instance]] = []
        for cloud, prov in self.provisioners.items():
            try:
                found += [(cloud, prov, i) for i in prov.list_owned() if self._ours(i)]
            except ProvisionError as exc:
                log.warning("installation sweep: cannot list %s: %s", cloud, exc)
        if not found:
            return 0
        alive = live_services()
        stray = [(c, p, i) for c, p, i in found if i.service not in alive]
        for cloud, prov, inst in stray:
            self._terminate_orphan(inst.service, cloud, prov, inst)
        return len(stray)
