"""Replica rows change only along the lifecycle table, each change with its event."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from common.clock import SystemClock
from controller.db import Database, EventRow
from controller.db.replica_store import SqlReplicaStore
from controller.services import create_service
from controller.settings import Settings
from controller.spec import load_spec_text
from policies.types import Location
from replica_manager.lifecycle import IllegalTransition
from replica_manager.records import ReplicaStatus as S

SPEC = "service: {readiness_probe: /, replicas: 1}\nresources: {ports: 80}\nrun: x\n"
LOC = Location("local", "local", "local-a")


@pytest.fixture
def store(db_url: str, tmp_path) -> SqlReplicaStore:
    db = Database(db_url)
    db.upgrade()
    settings = Settings.from_env({"SERVE_HOME": str(tmp_path)})
    create_service(db, settings, SystemClock(), "svc", load_spec_text(SPEC))
    return SqlReplicaStore(db, SystemClock())


def test_intents_get_increasing_ids_and_unique_tokens(store: SqlReplicaStore) -> None:
    a = store.create_intent("svc", 1, LOC, True, "t", 1.0, 3.0)
    b = store.create_intent("svc", 1, LOC, True, "t", 1.0, 3.0)
    assert (a.replica_id, b.replica_id) == (1, 2)
    assert a.launch_token != b.launch_token
    assert a.status == S.PENDING


def test_transition_writes_status_reason_and_event_together(store: SqlReplicaStore) -> None:
    r = store.create_intent("svc", 1, LOC, True, "t", 1.0, 3.0)
    r = store.transition(r, S.PROVISIONING, "launching")
    r = store.transition(r, S.STARTING, "instance running", instance_id="i-1")
    r = store.transition(r, S.READY, "probe passed")
    assert (r.status, r.status_reason, r.instance_id) == (S.READY, "probe passed", "i-1")
    with store.db.session() as s:
        kinds = s.scalars(select(EventRow.kind).order_by(EventRow.id)).all()
    assert kinds[-2:] == ["replica_starting", "replica_ready"]


def test_skipping_a_lifecycle_state_is_refused(store: SqlReplicaStore) -> None:
    r = store.create_intent("svc", 1, LOC, True, "t", 1.0, 3.0)
    with pytest.raises(IllegalTransition):
        store.transition(r, S.READY, "too early")
    assert store.replicas("svc")[0].status == S.PENDING


def test_a_replica_ended_since_the_caller_read_it_stays_ended(store: SqlReplicaStore) -> None:
    """The operator's `serve down NAME --replica-id N` lands between a tick's read and its
    write: the tick's stale judgement does not bring the replica back."""
    r = store.create_intent("svc", 1, LOC, True, "t", 1.0, 3.0)
    r = store.transition(r, S.PROVISIONING, "launching")
    read_by_tick = store.transition(r, S.STARTING, "instance running", instance_id="i-1")
    store.transition(read_by_tick, S.SHUTTING_DOWN, "requested by the operator")
    after = store.transition(read_by_tick, S.READY, "probe passed")
    assert (after.status, after.status_reason) == (S.SHUTTING_DOWN, "requested by the operator")
    assert store.transition(read_by_tick, S.PREEMPTED, "x").status == S.SHUTTING_DOWN
