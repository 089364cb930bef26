"""Phase 3 of a tick: ask the placement policy for a plan and carry it out, re-planning in
the same tick while locations refuse launches.

The policy (for spot services the YAML's `spot_policy`, SpotHedge by default; plain
on-demand otherwise) is the same object the
simulator replays; its state comes from and goes back to the service row only when it
changed. The operator hears when the plan leans on on-demand and when it stops, and when a
cloud is blocked because its answer needs a person.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from common.clock import Clock
from controller.db.service_store import SavedPolicy, ServiceStore
from controller.settings import Settings
from controller.spec import ServiceSpec
from controller.tick_state import TickState
from policies.registry import make_policy
from policies.replica_sets import bound_surge
from policies.types import LocationEvent, Plan, PolicyInput, ReplicaView
from provisioners.errors import ProvisionError
from replica_manager.execute import Executor
from replica_manager.lifecycle import ALIVE
from replica_manager.offer_book import OfferBook
from replica_manager.records import ReplicaRecord, ReplicaTemplate
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

MAX_PLAN_ROUNDS = 8


@dataclass
class PlacementRound:
    settings: Settings
    store: ReplicaStore
    services: ServiceStore
    executor: Executor
    offers: OfferBook
    clock: Clock

    def run(
        self,
        spec: ServiceSpec,
        template: ReplicaTemplate,
        target: int,
        events: tuple[LocationEvent, ...],
        state: TickState,
        saved: SavedPolicy,
        records: list[ReplicaRecord],
        surge: int | None = None,
    ) -> TickState:
        """`records`: the service's replicas as the tick last saw them (later rounds, after
        a refusal, read them again). `surge`: during a rolling update, how many replicas
        may run above the plan's steady state (None: no bound, as in a blue-green one)."""
        name = template.service
        earlier = self.executor.collect(name)  # launches that finished after their tick
        state = self.block_all(name, earlier.blocked, state)
        events = (*events, *earlier.refused)
        state = replace(state, blocked=state.blocked.current(self.clock.now()))
        offers = [
            o
            for o in self.offers.for_version(name, template.version, template.resources)
            if state.blocked.allows(o.location)
        ]
        if not offers:
            self.store.event(name, "no_location", "no location can host a replica right now")
            return state
        config = spec.placement_config()
        policy = make_policy(
            spec.service.policy.spot_policy if config.use_spot else "on_demand",
            refusal_backoff=self.settings.refusal_backoff_seconds,
        )
        policy_state = (
            policy.state_from_dict(saved.data)
            if saved.name == policy.name and saved.data
            else policy.initial_state()
        )
        by_key = {o.location.key: o for o in offers}
        for round_ in range(MAX_PLAN_ROUNDS):
            current = records if round_ == 0 else self.store.replicas(name)
            inp = PolicyInput(
                target=target,
                offers=tuple(offers),
                replicas=tuple(_view(r) for r in current if r.status in ALIVE),
                config=config,
                now=self.clock.now(),
                latest_version=template.version,
                events=events,
            )
            plan, policy_state = policy.plan(inp, policy_state)
            if surge is not None:
                plan = bound_surge(plan, inp, surge)
            latest = SavedPolicy(policy.name, policy.state_to_dict(policy_state))
            if latest != saved:
                self.services.save_policy(name, latest)
                saved = latest
            state = self._note_fallback(name, plan, inp, state)
            result = self.executor.execute(template, plan, by_key)
            state = self.block_all(name, result.blocked, state)
            if not result.refused:
                return state
            events = tuple(result.refused)
        return state

    def block_all(self, name: str, errors: list[ProvisionError], state: TickState) -> TickState:
        """Stop retrying a cloud whose answer needs a person (credentials, bad request)."""
        for error in errors:
            where = (error.location or "").split("/")[0] or "unknown"
            seconds = self.settings.cloud_block_seconds
            until = self.clock.now() + seconds
            state = replace(state, blocked=state.blocked.block(where, until, str(error)))
            self.store.event(
                name,
                "cloud_blocked",
                f"not retrying {where} for {seconds:.0f}s: {error}",
                data={"cloud": where, "error": error.kind},
            )
        return state

    def _note_fallback(
        self, name: str, plan: Plan, inp: PolicyInput, state: TickState
    ) -> TickState:
        """Tell the operator when the policy leans on on-demand, and when it stops."""
        base = inp.config.base_ondemand_fallback_replicas
        before = base if state.on_demand_target is None else state.on_demand_target
        state = self._note_reason(name, plan, state)
        state = replace(state, on_demand_target=plan.on_demand_target, spot_target=plan.spot_target)
        if before == plan.on_demand_target or not inp.config.use_spot:
            return state
        ready_spot = sum(1 for r in inp.replicas if r.spot and r.ready)
        if plan.on_demand_target > before:
            kind, why = "fallback_to_on_demand", plan.on_demand_reason or "spot short"
        else:
            kind, why = "back_to_spot", plan.on_demand_reason or "spot recovered"
        message = (
            f"{why} ({ready_spot}/{plan.spot_target} ready): "
            f"on-demand replicas {before} -> {plan.on_demand_target}"
        )
        data = {"on_demand": plan.on_demand_target, "ready_spot": ready_spot}
        self.store.event(name, kind, message, data=data)
        return state

    def _note_reason(self, name: str, plan: Plan, state: TickState) -> TickState:
        """An availability target's on-demand-only stretches begin and end with an event."""
        if plan.on_demand_reason == state.on_demand_reason:
            return state
        if plan.on_demand_reason:
            message = f"{plan.on_demand_reason}: serving from on-demand replicas until it fades"
            self.store.event(name, "on_demand_only", message, data={"on": True})
        else:
            message = f"recent outage back within budget ({state.on_demand_reason} before)"
            self.store.event(name, "on_demand_only", message, data={"on": False})
        return replace(state, on_demand_reason=plan.on_demand_reason)


def _view(r: ReplicaRecord) -> ReplicaView:
    return ReplicaView(
        replica_id=r.replica_id,
        location=r.location,
        spot=r.spot,
        ready=r.status == S.READY,
        version=r.version,
        launched_at=r.created_at,
    )
