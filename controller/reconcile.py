"""One reconcile tick of one service: re-read the world, act on the difference.

Phases, each safe to repeat after a crash: (1) adopt or reap what a crash left behind,
(2) observe instances and probes, (3) decide the target and ask the placement policy for a
plan, executing it and re-planning in the same tick when a location refuses a launch,
(4) terminate what is no longer wanted, (5) store the service's status and cost.
A service going down skips to its teardown, which deletes the service row only once every
enabled cloud was searched by tag and holds nothing of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from autoscaler.target import ScalingConfig, decide_target
from controller.bundle_store import BundleStore
from controller.costs import hourly_rates
from controller.db import Database, ServiceRow, ServiceVersionRow
from controller.db.replica_store import add_event, trim_events
from controller.lb_process import is_our_lb, start_lb, stop_lb
from controller.service_status import ServiceStatus, service_status
from controller.services import latest_version
from controller.settings import Settings
from controller.spec import ServiceSpec
from controller.templates import replica_template
from policies.registry import make_policy
from policies.types import LocationEvent, Offer, Plan, PolicyInput, ReplicaView
from provisioners.base import Provisioner
from provisioners.errors import ProvisionError
from provisioners.registry import candidate_offers
from replica_manager.cleanup import Cleaner
from replica_manager.clock import Clock
from replica_manager.execute import Executor
from replica_manager.lifecycle import ALIVE, APP_FAILURES, ENDING
from replica_manager.observe import Observer
from replica_manager.records import ReplicaRecord, ReplicaTemplate
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

log = logging.getLogger(__name__)

MAX_PLAN_ROUNDS = 8


@dataclass
class Reconciler:
    settings: Settings
    db: Database
    store: ReplicaStore
    clock: Clock
    provisioners: dict[str, Provisioner]
    observer: Observer
    executor: Executor
    cleaner: Cleaner
    bundles: BundleStore
    request_rate: Any = None  # autoscaler.rate.RequestRates, set by the runtime
    _offers: dict[tuple[str, int], list[Offer]] = field(default_factory=dict)
    _scanned: set[str] = field(default_factory=set)

    def rescan_all(self) -> None:
        """Look for orphans and interrupted launches of every service at its next tick
        (on becoming the leader: the previous one may have died mid-launch)."""
        self._scanned.clear()

    def tick(self, name: str) -> None:
        with self.db.session() as s:
            row = s.scalars(select(ServiceRow).where(ServiceRow.name == name)).one_or_none()
            if row is None:
                return
            view, version, status = latest_version(row), row.version, ServiceStatus(row.status)
            spec = view.spec
            state = dict(row.autoscaler_state or {})
            saved_policy = (row.policy_name, dict(row.policy_state or {}))
            lb = (row.lb_pid, row.lb_port, spec.service.load_balancing_policy)
        if status in (ServiceStatus.SHUTTING_DOWN, ServiceStatus.FAILED_CLEANUP):
            self._tear_down(name, lb[0])
            return
        bundle = self.bundles.get(view.bundle_digest) if view.bundle_digest else None
        template = replica_template(name, version, spec, bundle)
        self._ensure_lb(name, *lb)
        records = self.store.replicas(name)
        scanned = self._recover(name, state, records)
        before = {r.row_id: r.status for r in records}
        seen = self.observer.observe(template)
        for error in seen.blocked:
            self._block(name, error, state)
        state = self._count_app_failures(name, before, state)
        target = self._target(name, spec, state)
        if state["app_failure_streak"] < self.settings.app_failures_to_fail_service:
            self._place(name, spec, template, target, tuple(seen.events), state, saved_policy)
        self.cleaner.terminate_ending(name)
        self._store_status(name, target, state)
        if scanned:
            self._trim_events(name)

    # -- phase 1: what a crash may have left ---------------------------------------------

    def _recover(self, name: str, state: dict[str, Any], records: list[ReplicaRecord]) -> bool:
        """Adopt or reap what a crash left; True if it looked (and events are then trimmed)."""
        now = self.clock.now()
        in_flight = self.executor.in_flight(name)
        lost = any(
            r.status in (S.PENDING, S.PROVISIONING)
            and not r.instance_id
            and r.launch_token not in in_flight
            for r in records
        )
        due = now - state.get("last_orphan_scan", 0.0) >= self.settings.orphan_scan_seconds
        if not (lost or due or name not in self._scanned):
            return False
        first = name not in self._scanned
        self._scanned.add(name)
        clouds = {r.location.cloud for r in records} | set(self.provisioners)
        regions = None if first else self._regions_used(name, records)
        self.cleaner.reconcile_owned(name, sorted(clouds), in_flight, regions)
        self.cleaner.fail_lost_intents(name, in_flight)
        state["last_orphan_scan"] = now
        return True

    def _regions_used(self, name: str, records: list[ReplicaRecord]) -> dict[str, set[str]]:
        """Where the service's instances can be: its replicas' regions and its offers'. The
        first scan after leading, and the installation sweep, search everywhere."""
        regions: dict[str, set[str]] = {}
        places = [r.location for r in records]
        places += [
            o.location for (svc, _), offers in self._offers.items() if svc == name for o in offers
        ]
        for loc in places:
            regions.setdefault(loc.cloud, set()).add(loc.region)
        return regions

    def _trim_events(self, name: str) -> None:
        with self.db.session() as s:
            trim_events(s, name, self.settings.events_per_service)

    # -- phase 3: how many, and where ----------------------------------------------------

    def _target(self, name: str, spec: ServiceSpec, state: dict[str, Any]) -> int:
        qps = self.request_rate.qps(name, self.clock.now()) if self.request_rate else None
        before = state.get("scaler", {}).get("target")
        target, scaler = decide_target(
            scaling_config(spec), qps, state.get("scaler", {}), self.clock.now()
        )
        state["scaler"] = scaler
        if before is not None and target != before:
            kind = "scale_up" if target > before else "scale_down"
            rate = f"{qps:.2f} req/s" if qps is not None else "no traffic data"
            self.store.event(
                name,
                kind,
                f"target replicas {before} -> {target} ({rate})",
                data={"from": before, "to": target, "qps": qps},
            )
        return target

    def _place(
        self,
        name: str,
        spec: ServiceSpec,
        template: ReplicaTemplate,
        target: int,
        events: tuple[LocationEvent, ...],
        state: dict[str, Any],
        saved_policy: tuple[str, dict[str, Any]],
    ) -> None:
        offers = self._usable_offers(name, template, state)
        if not offers:
            self.store.event(name, "no_location", "no location can host a replica right now")
            return
        by_key = {o.location.key: o for o in offers}
        config = spec.placement_config()
        policy = make_policy(
            "spothedge" if config.use_spot else "on_demand",
            refusal_backoff=self.settings.refusal_backoff_seconds,
        )
        saved_name, saved_data = saved_policy
        policy_state = (
            policy.state_from_dict(saved_data)
            if saved_name == policy.name and saved_data
            else policy.initial_state()
        )
        earlier = self.executor.collect(name)  # launches that finished after their tick
        for error in earlier.blocked:
            self._block(name, error, state)
        events = (*events, *earlier.refused)
        for _ in range(MAX_PLAN_ROUNDS):
            records = self.store.replicas(name)
            inp = PolicyInput(
                target=target,
                offers=tuple(offers),
                replicas=tuple(_view(r) for r in records if r.status in ALIVE),
                config=config,
                now=self.clock.now(),
                latest_version=template.version,
                events=events,
            )
            plan, policy_state = policy.plan(inp, policy_state)
            data = policy.state_to_dict(policy_state)
            if (policy.name, data) != saved_policy:
                self._save_policy_state(name, policy.name, data)
                saved_policy = (policy.name, data)
            self._note_fallback(name, plan, inp, state)
            result = self.executor.execute(template, plan, by_key)
            for error in result.blocked:
                self._block(name, error, state)
            if not result.refused:
                return
            events = tuple(result.refused)

    def _note_fallback(
        self, name: str, plan: Plan, inp: PolicyInput, state: dict[str, Any]
    ) -> None:
        """Tell the operator when the policy leans on on-demand, and when it stops."""
        base = inp.config.base_ondemand_fallback_replicas
        before = state.get("on_demand_target", base)
        state["on_demand_target"], state["spot_target"] = plan.on_demand_target, plan.spot_target
        if before == plan.on_demand_target or not inp.config.use_spot:
            return
        ready_spot = sum(1 for r in inp.replicas if r.spot and r.ready)
        if plan.on_demand_target > before:
            kind, message = (
                "fallback_to_on_demand",
                (
                    f"spot short ({ready_spot}/{plan.spot_target} ready): "
                    f"on-demand replicas {before} -> {plan.on_demand_target}"
                ),
            )
        else:
            kind, message = (
                "back_to_spot",
                (
                    f"spot recovered ({ready_spot}/{plan.spot_target} ready): "
                    f"on-demand replicas {before} -> {plan.on_demand_target}"
                ),
            )
        self.store.event(
            name, kind, message, data={"on_demand": plan.on_demand_target, "ready_spot": ready_spot}
        )

    def _usable_offers(
        self, name: str, template: ReplicaTemplate, state: dict[str, Any]
    ) -> list[Offer]:
        key = (name, template.version)
        if key not in self._offers:
            self._offers[key] = candidate_offers(self.provisioners, template.resources)
        now = self.clock.now()
        blocked = {k: v for k, v in state.get("blocked", {}).items() if v["until"] > now}
        state["blocked"] = blocked
        return [
            o
            for o in self._offers[key]
            if o.location.key not in blocked and o.location.cloud not in blocked
        ]

    def _block(self, name: str, error: ProvisionError, state: dict[str, Any]) -> None:
        """Stop retrying a cloud whose answer needs a person (credentials, bad request)."""
        where = (error.location or "").split("/")[0] or "unknown"
        seconds = self.settings.cloud_block_seconds
        until = self.clock.now() + seconds
        state.setdefault("blocked", {})[where] = {"until": until, "reason": str(error)}
        self.store.event(
            name,
            "cloud_blocked",
            f"not retrying {where} for {seconds:.0f}s: {error}",
            data={"cloud": where, "error": error.kind},
        )

    def _save_policy_state(self, name: str, policy_name: str, data: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = s.scalars(select(ServiceRow).where(ServiceRow.name == name)).one()
            row.policy_name = policy_name
            row.policy_state = data

    def _count_app_failures(
        self, name: str, before: dict[int, S], state: dict[str, Any]
    ) -> dict[str, Any]:
        streak = int(state.get("app_failure_streak", 0))
        for r in self.store.replicas(name):
            if r.status == S.READY and before.get(r.row_id) != S.READY:
                streak = 0
            elif (
                r.status in APP_FAILURES
                and before.get(r.row_id) not in ENDING
                and r.ready_at is None
            ):
                streak += 1
        state["app_failure_streak"] = streak
        return state

    # -- phase 5: what the operator sees -------------------------------------------------

    def _store_status(self, name: str, target: int, state: dict[str, Any]) -> None:
        records = self.store.replicas(name)
        now = self.clock.now()
        with self.db.session() as s:
            row = s.scalars(select(ServiceRow).where(ServiceRow.name == name)).one_or_none()
            if row is None:
                return
            status, reason = service_status(
                ServiceStatus(row.status),
                records,
                target,
                int(state.get("app_failure_streak", 0)),
                self.settings.app_failures_to_fail_service,
            )
            if status.value != row.status:
                add_event(
                    s,
                    name,
                    "service_status",
                    f"service {name} is {status.value}: {reason}",
                    now,
                    data={"status": status.value},
                )
            if status == ServiceStatus.READY and row.ready_since is None:
                row.ready_since = now
            row.status, row.status_reason = status.value, reason
            row.target_replicas = target
            row.autoscaler_state = state
            _accrue_cost(row, records, now)

    # -- the load balancer ---------------------------------------------------------------

    def _ensure_lb(self, name: str, pid: int | None, port: int | None, policy: str) -> None:
        if is_our_lb(pid, name) or port is None:
            return
        new_pid = start_lb(self.settings, name, port, policy)
        with self.db.session() as s:
            row = s.scalars(select(ServiceRow).where(ServiceRow.name == name)).one()
            row.lb_pid = new_pid
            add_event(
                s,
                name,
                "lb_started",
                f"load balancer started on port {port}",
                self.clock.now(),
                data={"pid": new_pid, "port": port},
            )

    # -- teardown ------------------------------------------------------------------------

    def _tear_down(self, name: str, lb_pid: int | None) -> None:
        """Terminate every replica, then search every enabled cloud by tag (an interrupted
        launch may have left an instance no row knows); only then forget the service."""
        for r in self.store.replicas(name):
            if r.status in ALIVE:
                self.store.transition(r, S.SHUTTING_DOWN, "service is going down")
        self.cleaner.terminate_ending(name, teardown=True)
        stop_lb(lb_pid, name)
        left = self.store.replicas(name)
        clean = not left and self.cleaner.sweep_service(name) and self.cleaner.release(name)
        with self.db.session() as s:
            row = s.scalars(select(ServiceRow).where(ServiceRow.name == name)).one_or_none()
            if row is None:
                return
            now = self.clock.now()
            if not clean:
                if now - row.updated_at > self.settings.teardown_deadline_seconds:
                    what = f"{len(left)} replicas" if left else "tagged instances"
                    row.status = ServiceStatus.FAILED_CLEANUP.value
                    row.status_reason = (
                        f"{what} could not be terminated; check the cloud console, "
                        "then `serve down --purge`"
                    )
                return
            add_event(s, name, "service_deleted", f"service {name} is down", now)
            s.delete(row)
        self._offers = {k: v for k, v in self._offers.items() if k[0] != name}

    def sweep_installation(self) -> int:
        """Terminate this installation's instances of services that no longer exist, and
        drop bundles no version refers to any more."""
        found = self.cleaner.sweep_installation(self._service_names)
        with self.db.session() as s:
            referenced = set(s.scalars(select(ServiceVersionRow.bundle_digest)).all())
        self.bundles.prune(d for d in referenced if d)
        return found

    def _service_names(self) -> set[str]:
        with self.db.session() as s:
            return set(s.scalars(select(ServiceRow.name)).all())


def _view(r: ReplicaRecord) -> ReplicaView:
    return ReplicaView(
        replica_id=r.replica_id,
        location=r.location,
        spot=r.spot,
        ready=r.status == S.READY,
        version=r.version,
        launched_at=r.created_at,
    )


def _accrue_cost(row: ServiceRow, records: list[ReplicaRecord], now: float) -> None:
    """Add what the live instances cost since the last tick, and what on-demand would have."""
    hours = max(0.0, now - (row.cost_updated_at or now)) / 3600.0
    paying, on_demand = hourly_rates(records, row.target_replicas)
    row.cost_so_far += hours * paying
    row.on_demand_cost_so_far += hours * on_demand
    row.cost_updated_at = now


def scaling_config(spec: ServiceSpec) -> ScalingConfig:
    p = spec.service.policy
    return ScalingConfig(
        min_replicas=p.min_replicas,
        max_replicas=p.max_replicas if p.max_replicas is not None else p.min_replicas,
        target_qps_per_replica=p.target_qps_per_replica,
        upscale_delay_seconds=p.upscale_delay_seconds,
        downscale_delay_seconds=p.downscale_delay_seconds,
    )
