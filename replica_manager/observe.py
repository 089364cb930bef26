"""Observe phase of a tick: compare replica rows with what the clouds and probes report.

Level-triggered: it re-reads the provider and probes every live replica each time, so a
missed tick or a controller restart loses nothing. It returns the location events the
spot policy must hear about (preemptions, refusals, replicas that became ready).

What an instance's state means for its replica:
- not known to the cloud while provisioning, within `visibility_grace` of its launch: not
  visible yet (eventually consistent APIs); later, after it was seen running, or LOST: the
  replica is PREEMPTED ("lost"), never an application failure;
- PREEMPTED: PREEMPTED; REFUSED while provisioning: FAILED_PROVISION, placed elsewhere;
- TERMINATED (its program ended): FAILED, which counts toward the service's failure streak
  only if the replica was never ready;
- still not running `provisioning_deadline` after its launch: FAILED_PROVISION, terminated,
  and the location is avoided like a refusal;
- a preemption notice (from the adapter's listing or the replica's agent): DRAINING at once,
  which takes it out of the load balancers' lists, tells the policy its zone was preempted
  (the paper's signal, now ahead of the loss) and lets the placement launch its replacement;
  when the cloud then takes it, PREEMPTED with no second event for the policy; if the cloud
  has not taken it `drain_grace` after the notice's deadline, it is terminated.
Listing is per cloud and per region the service uses; a cloud that answers with a transient
error (throttling) is left alone by this service for a growing while.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from common.clock import Clock
from policies.types import LocationEvent, LocationEventKind
from provisioners.base import (
    VISIBILITY_GRACE_SECONDS,
    Instance,
    InstanceState,
    PreemptionNotice,
    Provisioner,
)
from provisioners.errors import LaunchTimedOut, ProvisionError, TransientError
from replica_manager.agent_sync import AgentSync
from replica_manager.probe import ProbeBoard, ProbeResult
from replica_manager.records import ReplicaRecord, ReplicaTemplate
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

log = logging.getLogger(__name__)

PROBED = frozenset({S.STARTING, S.READY, S.NOT_READY})
FOLLOWED = frozenset({S.PROVISIONING, *PROBED, S.DRAINING})
MAX_CLOUD_BACKOFF_SECONDS = 60.0
DRAIN_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class ProbePolicy:
    """When probe failures turn into status changes."""

    failures_to_not_ready: int = 3
    not_ready_grace_seconds: float = 60.0


@dataclass
class Observation:
    """What one observe pass found: events for the policy, errors that need a person."""

    events: list[LocationEvent] = field(default_factory=list)
    blocked: list[ProvisionError] = field(default_factory=list)
    records: list[ReplicaRecord] = field(default_factory=list)
    """Every replica of the service as this pass left it."""


@dataclass
class Observer:
    store: ReplicaStore
    provisioners: Mapping[str, Provisioner]
    probes: ProbeBoard
    clock: Clock
    probe_policy: ProbePolicy
    provisioning_deadline: float = 600.0
    visibility_grace: float = VISIBILITY_GRACE_SECONDS
    drain_grace: float = DRAIN_GRACE_SECONDS
    agents: AgentSync | None = None
    _backoff: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    _applied: dict[str, dict[int, int]] = field(default_factory=dict)
    """Per service, per replica row: the last probe result judged (its `seq`)."""

    def observe(
        self, template: ReplicaTemplate, records: list[ReplicaRecord] | None = None
    ) -> Observation:
        """One pass over the service's replicas (`records`, if the caller just read them)."""
        seen = Observation()
        everyone = self.store.replicas(template.service) if records is None else records
        live = [r for r in everyone if r.instance_id and r.status in FOLLOWED]
        instances = self._instances(template.service, live)
        followed = []
        for record in live:
            record = self._follow_instance(record, instances, seen)
            followed.append(record)
        followed = self._follow_agents(template, followed, seen)
        applied = self._applied.get(template.service, {})
        fresh: dict[int, int] = {}
        judged = []
        for record in followed:
            reading = self.probes.reading(record.url, template.probe) if record.url else None
            last = applied.get(record.row_id, 0)
            fresh[record.row_id] = reading.seq if reading else last
            if record.status in PROBED and reading is not None and reading.seq > last:
                record, event = self._apply_probe(record, reading.result, template)
                if event:
                    seen.events.append(event)
            judged.append(record)
        self._applied[template.service] = fresh
        current = {r.row_id: r for r in judged}
        seen.records = [current.get(r.row_id, r) for r in everyone]
        return seen

    def _follow_agents(
        self, template: ReplicaTemplate, records: list[ReplicaRecord], seen: Observation
    ) -> list[ReplicaRecord]:
        """Give cloud replicas' agents their jobs, copy their logs, and end a replica whose
        agent failed its boot, saw its program exit, or could not be trusted."""
        if self.agents is None:
            return records
        ended: dict[int, ReplicaRecord] = {}
        for verdict in self.agents.sync(template, records):
            current = verdict.record
            if verdict.notice is not None:
                if current.status in PROBED:
                    ended[current.row_id] = self._drain(current, verdict.notice, seen)
            elif verdict.lost:
                ended[current.row_id] = self._lost(current, verdict.reason, seen)
            elif current.status in PROBED:
                ended[current.row_id] = self.store.transition(current, S.FAILED, verdict.reason)
        return [ended.get(r.row_id, r) for r in records]

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
        if prov is None or self._backing_off(service, cloud):
            return {}
        regions = sorted({r.location.region for r in recs})
        try:
            listed = {i.instance_id: i for i in prov.list_owned(service, regions=regions)}
            out: dict[str, Instance | None] = {}
            for r in recs:
                assert r.instance_id
                out[r.instance_id] = listed.get(r.instance_id) or prov.get(
                    r.instance_id, r.location
                )
        except ProvisionError as exc:
            log.warning("observe: cannot list %s instances of %s: %s", cloud, service, exc)
            if isinstance(exc, TransientError):
                self._back_off(service, cloud)
            return {}
        self._backoff.pop((service, cloud), None)
        return out

    def _backing_off(self, service: str, cloud: str) -> bool:
        until, _ = self._backoff.get((service, cloud), (0.0, 0))
        return self.clock.now() < until

    def _back_off(self, service: str, cloud: str) -> None:
        """Leave a throttling (or failing) cloud alone for 2, 4, 8 ... 60 s."""
        _, failures = self._backoff.get((service, cloud), (0.0, 0))
        delay = min(MAX_CLOUD_BACKOFF_SECONDS, 2.0 ** (failures + 1))
        self._backoff[(service, cloud)] = (self.clock.now() + delay, failures + 1)

    def _follow_instance(
        self, record: ReplicaRecord, instances: dict[str, Instance | None], seen: Observation
    ) -> ReplicaRecord:
        """The record after what the cloud says of its instance; events go to `seen`."""
        assert record.instance_id
        if record.instance_id not in instances:
            return record  # the cloud did not answer this tick; look again next tick
        inst = instances[record.instance_id]
        if record.status == S.DRAINING:
            return self._follow_drain(record, inst)
        if inst is not None and inst.notice is not None and inst.state == InstanceState.RUNNING:
            return self._drain(record, inst.notice, seen)
        if inst is None:
            if (
                record.status == S.PROVISIONING
                and self._since_launch(record) < self.visibility_grace
            ):
                return record  # never seen yet: an eventually consistent API may not show it
            return self._lost(record, "the cloud no longer knows the instance", seen)
        if inst.state == InstanceState.PREEMPTED:
            return self._preempted(record, inst.detail or "preempted by the cloud", seen)
        if inst.state == InstanceState.LOST:
            return self._lost(record, inst.detail or "the instance is gone", seen)
        if inst.state == InstanceState.REFUSED:
            if record.status == S.PROVISIONING:
                return self._refused(record, inst.error or ProvisionError(inst.detail), seen)
            return self._lost(record, inst.detail or "ended by the cloud", seen)
        if inst.state == InstanceState.TERMINATED:
            return self.store.transition(record, S.FAILED, inst.detail or "the instance ended")
        if record.status == S.PROVISIONING and inst.state == InstanceState.RUNNING:
            return self.store.transition(
                record,
                S.STARTING,
                "instance running",
                launched_at=self.clock.now(),
                url=inst.url,
                agent_url=inst.agent_url,
            )
        if record.status == S.PROVISIONING and self._overdue(record):
            return self._overdue_launch(record, inst, seen)
        if (inst.url and inst.url != record.url) or (
            inst.agent_url and inst.agent_url != record.agent_url
        ):
            return self.store.update(
                record, url=inst.url or record.url, agent_url=inst.agent_url or record.agent_url
            )
        return record

    def _since_launch(self, record: ReplicaRecord) -> float:
        started = record.launched_at or record.status_changed_at or record.created_at
        return self.clock.now() - started

    def _overdue(self, record: ReplicaRecord) -> bool:
        return self.clock.now() - record.status_changed_at > self.provisioning_deadline

    def _preempted(self, record: ReplicaRecord, reason: str, seen: Observation) -> ReplicaRecord:
        record = self.store.transition(record, S.PREEMPTED, reason)
        now = self.clock.now()
        seen.events.append(
            LocationEvent(LocationEventKind.PREEMPTED, record.location, now, record.spot)
        )
        return record

    def _drain(
        self, record: ReplicaRecord, notice: PreemptionNotice, seen: Observation
    ) -> ReplicaRecord:
        now = self.clock.now()
        left = max(0.0, notice.deadline - now)
        where = f"{'spot' if record.spot else 'on-demand'} in {record.location}"
        record = self.store.transition(
            record,
            S.DRAINING,
            f"preemption notice, taken in {left:.0f}s: {notice.detail}".rstrip(": "),
            drain_deadline=notice.deadline,
        )
        lead = notice.deadline - notice.seen_at if notice.seen_at else left
        self.store.event(
            record.service,
            "preemption_notice",
            f"replica {record.replica_id} ({where}): the cloud takes it in {left:.0f}s; "
            f"drained from the load balancers and replaced now",
            replica_id=record.replica_id,
            data={
                "location": record.location.key,
                "spot": record.spot,
                "lead_seconds": round(lead, 1),
                "seconds_left": round(left, 1),
            },
        )
        seen.events.append(
            LocationEvent(LocationEventKind.PREEMPTED, record.location, now, record.spot)
        )
        return record

    def _follow_drain(self, record: ReplicaRecord, inst: Instance | None) -> ReplicaRecord:
        """A draining replica ends when the cloud takes it (already told to the policy at
        the notice) or, should the cloud not take it, some time after the deadline."""
        if inst is None or inst.state not in (InstanceState.RUNNING, InstanceState.UNKNOWN):
            why = (inst.detail if inst else "") or "the cloud took the instance"
            return self.store.transition(record, S.PREEMPTED, f"after its notice: {why}")
        deadline = record.drain_deadline or record.status_changed_at
        if self.clock.now() > deadline + self.drain_grace:
            return self.store.transition(
                record,
                S.SHUTTING_DOWN,
                f"drained; the cloud had not taken it {self.drain_grace:g}s after its notice",
            )
        return record

    def _lost(self, record: ReplicaRecord, why: str, seen: Observation) -> ReplicaRecord:
        """Gone without its program's doing: replaced like a preemption, not counted as a
        failure of the user's application."""
        return self._preempted(record, f"lost: {why}", seen)

    def _refused(
        self, record: ReplicaRecord, error: ProvisionError, seen: Observation
    ) -> ReplicaRecord:
        """The cloud accepted the launch, then refused it: fail it (its leftovers are
        terminated by cleanup) and let the policy place it elsewhere."""
        record = self.store.transition(record, S.FAILED_PROVISION, str(error))
        kind = "launch_refused" if error.try_elsewhere else "launch_failed"
        market = "spot" if record.spot else "on-demand"
        self.store.event(
            record.service,
            kind,
            f"{market} launch in {record.location} refused: {error}",
            replica_id=record.replica_id,
            data={"location": record.location.key, "spot": record.spot, "error": error.kind},
        )
        if error.try_elsewhere:
            seen.events.append(
                LocationEvent(
                    LocationEventKind.LAUNCH_REFUSED, record.location, self.clock.now(), record.spot
                )
            )
        else:
            seen.blocked.append(error)
        return record

    def _overdue_launch(
        self, record: ReplicaRecord, inst: Instance, seen: Observation
    ) -> ReplicaRecord:
        error = LaunchTimedOut(
            f"not running {self.provisioning_deadline:g}s after launch "
            f"({inst.detail or inst.state.value}); terminated and placed elsewhere",
            location=record.location.key,
        )
        return self._refused(record, error, seen)

    def _apply_probe(
        self, record: ReplicaRecord, result: ProbeResult, template: ReplicaTemplate
    ) -> tuple[ReplicaRecord, LocationEvent | None]:
        """The record after a new probe result, and the event the policy must hear."""
        now = self.clock.now()
        if result.ok:
            return self._probe_ok(record, now)
        return self._probe_failed(record, result, template, now), None

    def _probe_ok(
        self, record: ReplicaRecord, now: float
    ) -> tuple[ReplicaRecord, LocationEvent | None]:
        if record.status == S.READY:
            if record.probe_failures:
                record = self.store.update(record, probe_failures=0, last_probe_at=now)
            return record, None
        record = self.store.transition(
            record,
            S.READY,
            "readiness probe passed",
            probe_failures=0,
            ready_at=record.ready_at or now,
            last_probe_at=now,
        )
        return record, LocationEvent(LocationEventKind.READY, record.location, now, record.spot)

    def _probe_failed(
        self, record: ReplicaRecord, result: ProbeResult, template: ReplicaTemplate, now: float
    ) -> ReplicaRecord:
        failures = record.probe_failures + 1
        if record.status == S.STARTING:
            started = record.launched_at or record.status_changed_at
            if now - started > template.probe.initial_delay_seconds:
                return self.store.transition(
                    record,
                    S.FAILED_INITIAL_DELAY,
                    f"not ready after initial_delay_seconds="
                    f"{template.probe.initial_delay_seconds:g}: {result.detail}",
                )
            return record
        if record.status == S.READY and failures >= self.probe_policy.failures_to_not_ready:
            return self.store.transition(
                record,
                S.NOT_READY,
                f"{failures} probes failed: {result.detail}",
                probe_failures=failures,
            )
        grace = self.probe_policy.not_ready_grace_seconds
        if record.status == S.NOT_READY and now - record.status_changed_at > grace:
            return self.store.transition(
                record, S.FAILED_PROBING, f"not ready for over {grace:g}s: {result.detail}"
            )
        return self.store.update(record, probe_failures=failures, last_probe_at=now)
