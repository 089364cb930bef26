"""The fleet listing rebuilds only what changed, and never shows a stale replica: every
write to a replica moves its service's revision, on any controller reading the database."""

from __future__ import annotations

import json
from pathlib import Path

from common.clock import SystemClock
from controller.api.service_listing import ServiceListing
from controller.db import Database, ServiceRow
from controller.db.replica_store import SqlReplicaStore
from controller.services import create_service
from controller.settings import Settings
from controller.spec import load_spec_text
from policies.types import Location
from replica_manager.records import ReplicaStatus as S

SPEC = "service: {readiness_probe: /, replicas: 1}\nresources: {ports: 80}\nrun: x\n"
LOC = Location("local", "local", "local-a")


def statuses(listing: ServiceListing, name: str) -> list[str]:
    services = {s["name"]: s for s in json.loads(listing.json(now=1e9))}
    return [r["status"] for r in services[name]["replicas"]]


def test_each_replica_write_shows_in_the_next_listing_of_every_controller(
    db_url: str, tmp_path: Path
) -> None:
    db = Database(db_url)
    db.upgrade()
    settings = Settings.from_env({"SERVE_HOME": str(tmp_path)})
    for name in ("a", "b"):
        create_service(db, settings, SystemClock(), name, load_spec_text(SPEC))
    store = SqlReplicaStore(db, SystemClock())
    leader, standby = ServiceListing(db, settings), ServiceListing(db, settings)
    assert statuses(leader, "a") == [] and statuses(standby, "a") == []

    r = store.create_intent("a", 1, LOC, True, "t", 1.0, 3.0)
    assert statuses(leader, "a") == ["PENDING"] == statuses(standby, "a")
    r = store.transition(r, S.PROVISIONING, "launching")
    r = store.transition(r, S.STARTING, "running", instance_id="i-1", url="http://x")
    assert statuses(leader, "a") == ["STARTING"]
    r = store.transition(r, S.READY, "probe passed")
    r = store.update(r, probe_failures=1)
    assert statuses(leader, "a") == ["READY"] == statuses(standby, "a")
    store.delete(store.transition(r, S.SHUTTING_DOWN, "scale down"))
    assert statuses(leader, "a") == [] == statuses(standby, "a")
    assert statuses(leader, "b") == []


def test_a_listing_of_unchanged_services_keeps_their_uptime_current(
    db_url: str, tmp_path: Path
) -> None:
    db = Database(db_url)
    db.upgrade()
    settings = Settings.from_env({"SERVE_HOME": str(tmp_path)})
    create_service(db, settings, SystemClock(), "a", load_spec_text(SPEC))
    with db.session() as s:
        s.query(ServiceRow).update({ServiceRow.ready_since: 100.0})
    listing = ServiceListing(db, settings)
    first = json.loads(listing.json(now=200.0))[0]
    again = json.loads(listing.json(now=260.0))[0]
    assert (first["uptime_seconds"], again["uptime_seconds"]) == (100.0, 160.0)


def test_a_listing_of_unchanged_replicas_shows_the_cost_as_it_grows(
    db_url: str, tmp_path: Path
) -> None:
    db = Database(db_url)
    db.upgrade()
    settings = Settings.from_env({"SERVE_HOME": str(tmp_path)})
    create_service(db, settings, SystemClock(), "a", load_spec_text(SPEC))
    listing = ServiceListing(db, settings)
    assert json.loads(listing.json(now=1.0))[0]["cost"]["so_far"] == 0
    with db.session() as s:
        s.query(ServiceRow).update(
            {ServiceRow.cost_so_far: 1.5, ServiceRow.on_demand_cost_so_far: 6.0}
        )
    cost = json.loads(listing.json(now=2.0))[0]["cost"]
    assert (cost["so_far"], cost["savings_fraction"]) == (1.5, 0.75)
