"""Carry out a plan: write launch intents, launch beside the tick, mark scale-downs.

Intent before side effect: a PENDING row with its launch token is committed before the
cloud is called, and the token travels as a tag on the instance, so a crash at any point
leaves something the next tick can match up (see `cleanup.py`).

Launches are `InFlight` calls: the tick waits for them at most `wait_seconds`, so a refusal
from a quick cloud is re-planned in the same tick while a slow or hung cloud delays neither
the probes nor the other services; its outcome is collected on a later tick. Each call
writes its own outcome to the database. Fencing: right before the cloud is called, the call
checks that this controller still leads; a deposed leader launches nothing more and leaves
the intent row to the new leader's recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from common.clock import Clock
from policies.types import Launch, LocationEvent, LocationEventKind, Offer, Plan
from provisioners.base import InstanceState, LaunchRequest, Provisioner
from provisioners.errors import ProvisionError
from replica_manager.failpoints import failpoint
from replica_manager.in_flight import InFlight
from replica_manager.lifecycle import ALIVE
from replica_manager.records import ReplicaRecord, ReplicaTemplate
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

log = logging.getLogger(__name__)


def always_leading() -> bool:
    return True


@dataclass(frozen=True)
class LaunchOutcome:
    """What one launch call did. `skipped`: nothing for the policy to hear (the call found
    this controller no longer leads, or crashed before recording an outcome)."""

    record: ReplicaRecord
    error: ProvisionError | None = None
    skipped: bool = False


@dataclass
class ExecuteResult:
    launched: list[ReplicaRecord] = field(default_factory=list)
    refused: list[LocationEvent] = field(default_factory=list)
    blocked: list[ProvisionError] = field(default_factory=list)


@dataclass
class Executor:
    store: ReplicaStore
    provisioners: Mapping[str, Provisioner]
    clock: Clock
    controller_id: str
    pool: ThreadPoolExecutor
    fence: Callable[[], bool] = always_leading
    wait_seconds: float = 10.0
    _launches: InFlight[str, LaunchOutcome] = field(init=False)
    _service_of: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._launches = InFlight(self.pool)

    def execute(
        self, template: ReplicaTemplate, plan: Plan, offers: Mapping[str, Offer]
    ) -> ExecuteResult:
        self._scale_down(template.service, plan.terminations)
        started = set()
        for launch in plan.launches:
            record = self._intent(template, launch, offers)
            offer = offers[launch.location.key]
            self._service_of[record.launch_token] = template.service
            self._launches.start(
                record.launch_token, partial(self._launch, template, record, offer)
            )
            started.add(record.launch_token)
        self._launches.wait(started, self.wait_seconds)
        return self.collect(template.service)

    def collect(self, service: str) -> ExecuteResult:
        """Outcomes of the service's launches that finished since the last collect."""
        tokens = {t for t, s in self._service_of.items() if s == service}
        result = ExecuteResult()
        for token, outcome in self._launches.collect(tokens):
            del self._service_of[token]
            if outcome.skipped:
                continue
            if outcome.error is None:
                result.launched.append(outcome.record)
            elif outcome.error.try_elsewhere:
                record = outcome.record
                result.refused.append(
                    LocationEvent(
                        LocationEventKind.LAUNCH_REFUSED,
                        record.location,
                        self.clock.now(),
                        record.spot,
                    )
                )
            else:
                result.blocked.append(outcome.error)
        return result

    def in_flight(self, service: str) -> set[str]:
        """Launch tokens of the service whose launch call is still running."""
        return {t for t in self._launches.running() if self._service_of.get(t) == service}

    def _scale_down(self, service: str, replica_ids: tuple[int, ...]) -> None:
        if not replica_ids:
            return
        wanted = set(replica_ids)
        for record in self.store.replicas(service):
            if record.replica_id in wanted and record.status in ALIVE:
                self.store.transition(record, S.SHUTTING_DOWN, "scaled down")

    def _intent(
        self, template: ReplicaTemplate, launch: Launch, offers: Mapping[str, Offer]
    ) -> ReplicaRecord:
        offer = offers[launch.location.key]
        price = offer.spot_price if launch.spot and offer.spot_price else offer.on_demand_price
        return self.store.create_intent(
            template.service,
            template.version,
            launch.location,
            launch.spot,
            offer.instance_type,
            price,
            offer.on_demand_price,
        )

    def _launch(
        self, template: ReplicaTemplate, record: ReplicaRecord, offer: Offer
    ) -> LaunchOutcome:
        """One launch, start to recorded outcome; never raises (it runs off the tick)."""
        try:
            return self._launch_recorded(template, record, offer)
        except Exception:
            log.exception("launch of %s replica %s failed", record.service, record.replica_id)
            return LaunchOutcome(record, skipped=True)

    def _launch_recorded(
        self, template: ReplicaTemplate, record: ReplicaRecord, offer: Offer
    ) -> LaunchOutcome:
        prov = self.provisioners.get(record.location.cloud)
        failpoint("launch.before_provider")
        if not self.fence():
            log.warning("not the leader any more: replica %s not launched", record.replica_id)
            return LaunchOutcome(record, skipped=True)
        record = self.store.transition(record, S.PROVISIONING, "launching")
        if prov is None:
            error = ProvisionError(f"cloud {record.location.cloud} is not enabled")
            return self._refusal(record, error)
        try:
            inst = prov.launch(self._request(template, record, offer))
        except ProvisionError as exc:
            return self._refusal(record, exc)
        except Exception as exc:  # an adapter bug must not lose the intent row
            log.exception("launch of %s replica %s crashed", record.service, record.replica_id)
            return self._refusal(record, ProvisionError(f"unexpected error: {exc}"))
        failpoint("launch.after_provider")
        if inst.state == InstanceState.RUNNING:
            record = self.store.transition(
                record,
                S.STARTING,
                "instance running",
                instance_id=inst.instance_id,
                url=inst.url,
                agent_url=inst.agent_url,
                launched_at=self.clock.now(),
            )
        else:
            record = self.store.update(
                record, instance_id=inst.instance_id, url=inst.url, agent_url=inst.agent_url
            )
        failpoint("launch.recorded")
        return LaunchOutcome(record)

    def _request(
        self, template: ReplicaTemplate, record: ReplicaRecord, offer: Offer
    ) -> LaunchRequest:
        return LaunchRequest(
            service=template.service,
            replica_id=record.replica_id,
            launch_token=record.launch_token,
            controller_id=self.controller_id,
            offer=offer,
            spot=record.spot,
            port=template.port,
            run=template.run,
            setup=template.setup,
            envs=dict(template.envs),
            secrets=dict(template.secrets),
            workdir=template.workdir,
            resources=template.resources[0],
            bundle=template.bundle,
            bucket_mounts=template.bucket_mounts,
            agent_token=record.agent_token,
        )

    def _refusal(self, record: ReplicaRecord, error: ProvisionError) -> LaunchOutcome:
        """The cloud said no at once: the row owns no instance. Parts an adapter made before
        the refusal (an Azure NIC it may not delete for a while) are tagged, and the orphan
        scan reaps them."""
        now = self.clock.now()
        record = self.store.transition(record, S.FAILED_PROVISION, str(error), terminated_at=now)
        kind = "launch_refused" if error.try_elsewhere else "launch_failed"
        self.store.event(
            record.service,
            kind,
            f"{_market(record.spot)} launch in {record.location} refused: {error}",
            replica_id=record.replica_id,
            data={"location": record.location.key, "spot": record.spot, "error": error.kind},
        )
        return LaunchOutcome(record, error)


def _market(spot: bool) -> str:
    return "spot" if spot else "on-demand"
