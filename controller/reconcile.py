"""One reconcile tick of one service: re-read the world, act on the difference.

Phases, each safe to repeat after a crash: (1) adopt or reap what a crash left behind,
(2) observe instances, agents and probes, (3) decide the target and place it
(`PlacementRound`), (4) terminate what is no longer wanted, (5) store the service's status,
cost and tick state. A service going down skips to its `Teardown`. The tick reads the
service row once (`ServiceStore.snapshot`) and carries its memory as a frozen `TickState`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from autoscaler.capacity import Fleet
from autoscaler.target import decide_target
from common.clock import Clock
from controller.bundle_store import BundleStore
from controller.capacity import CapacityTable
from controller.db import Database
from controller.db.replica_store import trim_events
from controller.db.service_store import ServiceSnapshot, ServiceStore
from controller.lb_process import is_our_lb, port_is_free, serves_tls_as, start_lb, stop_lb
from controller.placement_round import PlacementRound
from controller.settings import Settings
from controller.spec import ServiceSpec
from controller.teardown import Teardown
from controller.templates import replica_template, scaling_config
from controller.tick_state import TickState
from controller.updates import surge_for
from provisioners.base import Provisioner
from replica_manager.cleanup import Cleaner
from replica_manager.execute import Executor
from replica_manager.lifecycle import app_failure_streak
from replica_manager.observe import Observer
from replica_manager.offer_book import OfferBook
from replica_manager.records import ReplicaRecord, ReplicaTemplate
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

log = logging.getLogger(__name__)


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
    services: ServiceStore = field(init=False)
    offers: OfferBook = field(init=False)
    placing: PlacementRound = field(init=False)
    teardown: Teardown = field(init=False)
    _scanned: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.services = ServiceStore(self.db, self.clock)
        self.offers = OfferBook(self.provisioners)
        self.placing = PlacementRound(
            self.settings, self.store, self.services, self.executor, self.offers, self.clock
        )
        self.teardown = Teardown(
            self.settings, self.store, self.services, self.cleaner, self.offers
        )

    def rescan_all(self) -> None:
        """Look for orphans and interrupted launches of every service at its next tick
        (on becoming the leader: the previous one may have died mid-launch)."""
        self._scanned.clear()

    def tick(self, name: str) -> None:
        snap = self.services.snapshot(name)
        if snap is None:
            return
        if snap.going_down:
            self.teardown.step(name, snap.lb_pid)
            return
        bundle = self.bundles.get(snap.bundle_digest) if snap.bundle_digest else None
        template = replica_template(name, snap.version, snap.spec, bundle)
        lb_problem = self._ensure_lb(snap)
        records = self.store.replicas(name)
        state, scanned = self._recover(name, snap.state, records)
        if scanned:  # it may have adopted instances or failed lost intents
            records = self.store.replicas(name)
        before = {r.row_id: r.status for r in records}
        seen = self.observer.observe(template, records)
        state = self.placing.block_all(name, seen.blocked, state)
        streak = app_failure_streak(before, seen.records, state.app_failure_streak)
        state = replace(state, app_failure_streak=streak, lb_problem=lb_problem)
        fleet = self._fleet(snap.spec, template, seen.records)
        target, state = self._target(name, snap.spec, state, fleet)
        if state.app_failure_streak < self.settings.app_failures_to_fail_service:
            events = tuple(seen.events)
            rolling = snap.update_mode == "rolling"
            surge = surge_for(target, snap.max_surge) if rolling else None
            state = self.placing.run(
                snap.spec, template, target, events, state, snap.policy, seen.records, surge
            )
        self.cleaner.terminate_ending(name)
        self.services.save_tick(
            name,
            target,
            state,
            self.store.replicas(name),
            self.settings.app_failures_to_fail_service,
        )
        if scanned:
            with self.db.session() as s:
                trim_events(s, name, self.settings.events_per_service)

    def sweep_installation(self) -> int:
        """Terminate this installation's instances of services that no longer exist, and
        drop bundles no version refers to any more."""
        found = self.cleaner.sweep_installation(self.services.names)
        self.bundles.prune(self.services.bundle_digests())
        return found

    # -- phase 1: what a crash may have left ---------------------------------------------

    def _recover(
        self, name: str, state: TickState, records: list[ReplicaRecord]
    ) -> tuple[TickState, bool]:
        """Adopt or reap what a crash left; says whether it looked (events are then
        trimmed too). The first look after leading searches every region."""
        now = self.clock.now()
        in_flight = self.executor.in_flight(name)
        lost = any(
            r.status in (S.PENDING, S.PROVISIONING)
            and not r.instance_id
            and r.launch_token not in in_flight
            for r in records
        )
        due = now - state.last_orphan_scan >= self.settings.orphan_scan_seconds
        first = name not in self._scanned
        if not (lost or due or first):
            return state, False
        self._scanned.add(name)
        clouds = {r.location.cloud for r in records} | set(self.provisioners)
        regions = None if first else self._regions_used(name, records)
        self.cleaner.reconcile_owned(name, sorted(clouds), in_flight, regions)
        self.cleaner.fail_lost_intents(name, in_flight)
        return replace(state, last_orphan_scan=now), True

    def _regions_used(self, name: str, records: list[ReplicaRecord]) -> dict[str, set[str]]:
        """Where the service's instances can be: its replicas' regions and its offers'."""
        regions = self.offers.regions(name)
        for r in records:
            regions.setdefault(r.location.cloud, set()).add(r.location.region)
        return regions

    # -- phase 3: how many ---------------------------------------------------------------

    def _target(
        self, name: str, spec: ServiceSpec, state: TickState, fleet: Fleet | None
    ) -> tuple[int, TickState]:
        now = self.clock.now()
        qps = self.request_rate.qps(name, now) if self.request_rate else None
        config = scaling_config(spec)
        concurrency = None
        if config.target_concurrency_per_replica is not None and self.request_rate:
            concurrency = self.request_rate.concurrency(name, now)
        before = state.scaler.target
        target, scaler = decide_target(config, qps, state.scaler, now, fleet, concurrency)
        if before is not None and target != before:
            kind = "scale_up" if target > before else "scale_down"
            rate = f"{qps:.2f} req/s" if qps is not None else "no traffic data"
            if concurrency is not None:
                rate += f", {concurrency:.1f} in flight"
            self.store.event(
                name,
                kind,
                f"target replicas {before} -> {target} ({rate})",
                data={"from": before, "to": target, "qps": qps, "in_flight": concurrency},
            )
        return target, replace(state, scaler=scaler)

    def _fleet(
        self, spec: ServiceSpec, template: ReplicaTemplate, records: list[ReplicaRecord]
    ) -> Fleet | None:
        """The replicas' capacities, when the target is given per accelerator."""
        table = CapacityTable.of(spec)
        if table is None:
            return None
        offers = self.offers.for_version(template.service, template.version, template.resources)
        return table.fleet(records, template.version, offers)

    # -- the load balancer ---------------------------------------------------------------

    def _ensure_lb(self, snap: ServiceSnapshot) -> str:
        """The service's load balancer on this host, unless load balancers run elsewhere
        (`SERVE_START_LOAD_BALANCERS=0`: they follow the controller from their hosts).
        Returns why it cannot start ("" if it runs). The endpoint never moves: if another
        process took its port, the operator is told (an event, `serve status`) and the
        load balancer starts as soon as the port is free."""
        if not self.settings.start_load_balancers:
            return ""
        tls = snap.spec.service.tls
        if is_our_lb(snap.lb_pid, snap.name):
            if serves_tls_as(snap.lb_pid, tls):
                return ""
            self._restart_lb_for_tls(snap)
        if snap.lb_port is None:
            return ""
        host, port, was = self.settings.lb_host, snap.lb_port, snap.state.lb_problem
        if not port_is_free(host, port):
            problem = (
                f"load balancer port {port} on {host} is taken by another process: free it "
                f"(the endpoint keeps its port) and the load balancer starts again"
            )
            if problem != was:
                self.store.event(snap.name, "lb_port_taken", problem, data={"port": port})
            return problem
        policy = snap.spec.service.load_balancing_policy
        pid = start_lb(self.settings, snap.name, port, policy, tls)
        self.services.lb_started(snap.name, pid, port)
        if was:
            self.store.event(snap.name, "lb_started", f"load balancer started again on port {port}")
        return ""

    def _restart_lb_for_tls(self, snap: ServiceSnapshot) -> None:
        """`service.tls` changed (`serve update`): the endpoint pauses while a load balancer
        with the new setting replaces the old one. A new certificate at the same paths needs
        none of this: the load balancer reloads it."""
        stop_lb(snap.lb_pid, snap.name)
        scheme = "https" if snap.spec.service.tls else "http"
        self.store.event(
            snap.name, "lb_restarted", f"load balancer restarted: service.tls changed ({scheme})"
        )
