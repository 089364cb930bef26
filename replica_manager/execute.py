"""Carry out a plan: write launch intents, launch in parallel, mark scale-downs.

Intent before side effect: a PENDING row with its launch token is committed before the
cloud is called, and the token travels as a tag on the instance, so a crash at any point
leaves something the next tick can match up (see `cleanup.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from policies.types import Launch, LocationEvent, LocationEventKind, Offer, Plan
from provisioners.base import InstanceState, LaunchRequest, Provisioner
from provisioners.errors import ProvisionError
from replica_manager.clock import Clock
from replica_manager.failpoints import failpoint
from replica_manager.lifecycle import ALIVE
from replica_manager.records import ReplicaRecord, ReplicaTemplate
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

log = logging.getLogger(__name__)


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

    def execute(
        self, template: ReplicaTemplate, plan: Plan, offers: Mapping[str, Offer]
    ) -> ExecuteResult:
        self._scale_down(template.service, plan.terminations)
        intents = [self._intent(template, launch, offers) for launch in plan.launches]
        result = ExecuteResult()
        outcomes = self.pool.map(lambda rec: self._launch(template, rec, offers), intents)
        for record, outcome in zip(intents, outcomes, strict=True):
            if isinstance(outcome, ProvisionError):
                self._record_refusal(record, outcome, result)
            else:
                result.launched.append(outcome)
        if result.launched:
            failpoint("launch.recorded")
        return result

    def _scale_down(self, service: str, replica_ids: tuple[int, ...]) -> None:
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
        self, template: ReplicaTemplate, record: ReplicaRecord, offers: Mapping[str, Offer]
    ) -> ReplicaRecord | ProvisionError:
        prov = self.provisioners.get(record.location.cloud)
        record = self.store.transition(record, S.PROVISIONING, "launching")
        if prov is None:
            return ProvisionError(f"cloud {record.location.cloud} is not enabled")
        request = self._request(template, record, offers[record.location.key])
        failpoint("launch.before_provider")
        try:
            inst = prov.launch(request)
        except ProvisionError as exc:
            return exc
        except Exception as exc:  # an adapter bug must not lose the intent row
            log.exception("launch of %s replica %s crashed", record.service, record.replica_id)
            return ProvisionError(f"unexpected error: {exc}")
        failpoint("launch.after_provider")
        now = self.clock.now()
        if inst.state == InstanceState.RUNNING:
            return self.store.transition(
                record,
                S.STARTING,
                "instance running",
                instance_id=inst.instance_id,
                url=inst.url,
                launched_at=now,
            )
        return self.store.update(record, instance_id=inst.instance_id, url=inst.url)

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
            workdir=template.workdir,
            resources=template.resources[0],
        )

    def _record_refusal(
        self, record: ReplicaRecord, error: ProvisionError, result: ExecuteResult
    ) -> None:
        now = self.clock.now()
        self.store.transition(record, S.FAILED_PROVISION, str(error), terminated_at=now)
        kind = "launch_refused" if error.try_elsewhere else "launch_failed"
        self.store.event(
            record.service,
            kind,
            f"{_market(record.spot)} launch in {record.location} refused: {error}",
            replica_id=record.replica_id,
            data={"location": record.location.key, "spot": record.spot, "error": error.kind},
        )
        if error.try_elsewhere:
            result.refused.append(
                LocationEvent(LocationEventKind.LAUNCH_REFUSED, record.location, now, record.spot)
            )
        else:
            result.blocked.append(error)


def _market(spot: bool) -> str:
    return "spot" if spot else "on-demand"
