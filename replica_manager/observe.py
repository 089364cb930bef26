"""Observe phase of a tick: compare replica rows with what the clouds and probes report.

Level-triggered: it re-reads the provider and probes every live replica each time, so a
missed tick or a controller restart loses nothing. It returns the location events the
spot policy must hear about (preemptions, replicas that became ready).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from policies.types import LocationEvent, LocationEventKind
from provisioners.base import Instance, InstanceState, Provisioner
from provisioners.errors import ProvisionError
from replica_manager.clock import Clock
from replica_manager.probe import Prober, ProbeResult
from replica_manager.records import ReplicaRecord, ReplicaTemplate
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

log = logging.getLogger(__name__)

PROBED = frozenset({S.STARTING, S.READY, S.NOT_READY})


@dataclass(frozen=True)
class ProbePolicy:
    """When probe failures turn into status changes."""

    failures_to_not_ready: int = 3
    not_ready_grace_seconds: float = 60.0


@dataclass
class Observer:
    store: ReplicaStore
    provisioners: Mapping[str, Provisioner]
    prober: Prober
    clock: Clock
    probe_policy: ProbePolicy

    def observe(self, template: ReplicaTemplate) -> list[LocationEvent]:
        events: list[LocationEvent] = []
        records = [r for r in self.store.replicas(template.service) if r.instance_id]
        live = [r for r in records if r.status in (S.PROVISIONING, *PROBED)]
        instances = self._instances(template.service, live)
        followed = []
        for record in live:
            record, event = self._follow_instance(record, instances)
            followed.append(record)
            if event:
                events.append(event)
        probed = [r for r in followed if r.status in PROBED and r.url]
        results = self.prober.probe_all((r.url or "", template.probe) for r in probed)
        for record, result in zip(probed, results, strict=True):
            event = self._apply_probe(record, result, template)
            if event:
                events.append(event)
        return events

    def _instances(self, service: str, live: list[ReplicaRecord]) -> dict[str, Instance | None]:
        """Instance by id for the live records, one list call per cloud, then `get` for
        the ones the listing missed (a preempted instance may only be visible to `get`)."""
        found: dict[str, Instance | None] = {}
        by_cloud: dict[str, list[ReplicaRecord]] = defaultdict(list)
        for r in live:
            by_cloud[r.location.cloud].append(r)
        for cloud, recs in by_cloud.items():
            found.update(self._cloud_instances(service, cloud, recs))
        return found

    def _cloud_instances(
        self, service: str, cloud: str, recs: list[ReplicaRecord]
    ) -> dict[str, Instance | None]:
        prov = self.provisioners.get(cloud)
        if prov is None:
            return {}
        try:
            listed = {i.instance_id: i for i in prov.list_owned(service)}
            out: dict[str, Instance | None] = {}
            for r in recs:
                assert r.instance_id
                out[r.instance_id] = listed.get(r.instance_id) or prov.get(
                    r.instance_id, r.location
                )
            return out
        except ProvisionError as exc:
            log.warning("observe: cannot list %s instances of %s: %s", cloud, service, exc)
            return {}

    def _follow_instance(
        self, record: ReplicaRecord, instances: dict[str, Instance | None]
    ) -> tuple[ReplicaRecord, LocationEvent | None]:
        """The record after what the cloud says of its instance, and the event to report."""
        assert record.instance_id
        if record.instance_id not in instances:
            return record, None  # the cloud did not answer this tick; look again next tick
        inst = instances[record.instance_id]
        now = self.clock.now()
        if inst is not None and inst.state == InstanceState.PREEMPTED:
            record = self.store.transition(
                record, S.PREEMPTED, inst.detail or "preempted by the cloud"
            )
            return record, LocationEvent(
                LocationEventKind.PREEMPTED, record.location, now, record.spot
            )
        if inst is None or inst.state == InstanceState.TERMINATED:
            why = (inst.detail if inst else "") or "the instance is gone"
            return self.store.transition(record, S.FAILED, why), None
        if record.status == S.PROVISIONING and inst.state == InstanceState.RUNNING:
            record = self.store.transition(
                record, S.STARTING, "instance running", launched_at=now, url=inst.url
            )
        elif inst.url and inst.url != record.url:
            record = self.store.update(record, url=inst.url)
        return record, None

    def _apply_probe(
        self, record: ReplicaRecord, result: ProbeResult, template: ReplicaTemplate
    ) -> LocationEvent | None:
        now = self.clock.now()
        if result.ok:
            return self._probe_ok(record, now)
        self._probe_failed(record, result, template, now)
        return None

    def _probe_ok(self, record: ReplicaRecord, now: float) -> LocationEvent | None:
        if record.status == S.READY:
            if record.probe_failures:
                self.store.update(record, probe_failures=0, last_probe_at=now)
            return None
        self.store.transition(
            record,
            S.READY,
            "readiness probe passed",
            probe_failures=0,
            ready_at=record.ready_at or now,
            last_probe_at=now,
        )
        return LocationEvent(LocationEventKind.READY, record.location, now, record.spot)

    def _probe_failed(
        self, record: ReplicaRecord, result: ProbeResult, template: ReplicaTemplate, now: float
    ) -> None:
        failures = record.probe_failures + 1
        if record.status == S.STARTING:
            started = record.launched_at or record.status_changed_at
            if now - started > template.probe.initial_delay_seconds:
                self.store.transition(
                    record,
                    S.FAILED_INITIAL_DELAY,
                    f"not ready after initial_delay_seconds="
                    f"{template.probe.initial_delay_seconds:g}: {result.detail}",
                )
            return
        if record.status == S.READY and failures >= self.probe_policy.failures_to_not_ready:
            self.store.transition(
                record,
                S.NOT_READY,
                f"{failures} probes failed: {result.detail}",
                probe_failures=failures,
            )
            return
        grace = self.probe_policy.not_ready_grace_seconds
        if record.status == S.NOT_READY and now - record.status_changed_at > grace:
            self.store.transition(
                record, S.FAILED_PROBING, f"not ready for over {grace:g}s: {result.detail}"
            )
            return
        self.store.update(record, probe_failures=failures, last_probe_at=now)
