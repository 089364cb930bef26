"""A service going down: terminate every replica, stop its load balancer, search every
enabled cloud by tag (an interrupted launch may have left an instance no row knows), let
each cloud delete what it keeps for the service (bundles), and only then forget it. Past
`Settings.teardown_deadline_seconds` without getting there, the service is FAILED_CLEANUP
for a person to look at (`serve down --purge` forgets it)."""

from __future__ import annotations

from dataclasses import dataclass

from controller.db.service_store import ServiceStore
from controller.lb_process import stop_lb
from controller.settings import Settings
from replica_manager.cleanup import Cleaner
from replica_manager.lifecycle import HELD
from replica_manager.offer_book import OfferBook
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore


@dataclass
class Teardown:
    settings: Settings
    store: ReplicaStore
    services: ServiceStore
    cleaner: Cleaner
    offers: OfferBook

    def step(self, name: str, lb_pid: int | None) -> None:
        """One tick's worth of teardown; safe to repeat after a crash."""
        for r in self.store.replicas(name):
            if r.status in HELD:
                self.store.transition(r, S.SHUTTING_DOWN, "service is going down")
        self.cleaner.terminate_ending(name, teardown=True)
        stop_lb(lb_pid, name)
        left = self.store.replicas(name)
        clean = not left and self.cleaner.sweep_service(name) and self.cleaner.release(name)
        gone = self.services.finish_teardown(
            name, clean, len(left), self.settings.teardown_deadline_seconds
        )
        if gone:
            self.offers.forget(name)
