"""The controller's side each tick (`AgentSync`) against real agents booted from the real
boot script: the job goes once, to an agent that proved itself; the log comes home; a
failed boot or an impostor ends the replica with the reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from common.clock import SystemClock
from controller.db import Database
from controller.db.replica_store import SqlReplicaStore
from controller.services import create_service
from controller.settings import Settings
from controller.spec import load_spec_text
from policies.types import Location
from replica_manager.agent_sync import AgentSync, AgentVerdict
from replica_manager.records import ProbeSpec, ReplicaRecord, ReplicaTemplate
from replica_manager.records import ReplicaStatus as S
from tests.agent.conftest import Boot
from tests.agent.harness import SECRET, launch_request

SPEC = "service: {replicas: 1}\nresources: {ports: 8080}\nrun: x\n"


@pytest.fixture
def store(tmp_path: Path) -> SqlReplicaStore:
    settings = Settings.from_env({"SERVE_HOME": str(tmp_path / "home")})
    db = Database(f"sqlite:///{tmp_path / 'serve.db'}")
    db.upgrade()
    create_service(db, settings, SystemClock(), "chat", load_spec_text(SPEC))
    return SqlReplicaStore(db, SystemClock())


@pytest.fixture
def sync(store: SqlReplicaStore, tmp_path: Path) -> Iterator[AgentSync]:
    pool = ThreadPoolExecutor(4)
    yield AgentSync(
        store, {}, SystemClock(), pool, lambda s, r: tmp_path / "logs" / s / f"replica-{r}.log"
    )
    pool.shutdown()


def template(setup: str | None, run: str, port: int) -> ReplicaTemplate:
    return ReplicaTemplate(
        service="chat",
        version=1,
        run=run,
        port=port,
        probe=ProbeSpec("/", port, 60, 5),
        setup=setup,
        envs={"MODEL_NAME": "tiny"},
        secrets={"HF_TOKEN": SECRET},
    )


def starting_replica(store: SqlReplicaStore, agent_url: str, token: str) -> ReplicaRecord:
    record = store.create_intent("chat", 1, Location("local", "l", "l-a"), True, "x", 1, 3)
    record = store.transition(record, S.PROVISIONING, "launching", instance_id="i-1")
    record = store.transition(record, S.STARTING, "running", agent_url=agent_url)
    return store.update(record, agent_token=token)


def sync_until(
    sync: AgentSync,
    store: SqlReplicaStore,
    tmpl: ReplicaTemplate,
    done: object,
    seconds: float = 20,
) -> list[AgentVerdict]:
    deadline = time.monotonic() + seconds
    while True:
        verdicts = sync.sync(tmpl, store.replicas("chat"))
        if verdicts or done():  # type: ignore[operator]
            return verdicts
        assert time.monotonic() < deadline, f"nothing happened: {store.replicas('chat')}"
        time.sleep(0.1)


def test_the_job_goes_once_and_the_log_comes_home(
    boot_agent: Boot, store: SqlReplicaStore, sync: AgentSync, tmp_path: Path
) -> None:
    request = launch_request(replica_id=1)
    agent = boot_agent(request)
    starting_replica(store, agent.url, request.agent_token)
    tmpl = template("echo setting-up", 'echo "app says $MODEL_NAME"; sleep 30', request.port)
    log = tmp_path / "logs" / "chat" / "replica-1.log"

    verdicts = sync_until(
        sync, store, tmpl, lambda: log.exists() and "app says tiny" in log.read_text()
    )

    assert verdicts == []
    (record,) = store.replicas("chat")
    assert record.job_sent_at is not None and record.agent_cert_sha256
    text = log.read_text()
    assert "setting-up" in text and SECRET not in text
    assert record.log_offset == len(log.read_bytes())
    sync.sync(tmpl, store.replicas("chat"))  # a second tick sends nothing again (409 is fine)
    assert store.replicas("chat")[0].job_sent_at == record.job_sent_at


def test_a_failed_setup_ends_the_replica_with_its_reason(
    boot_agent: Boot, store: SqlReplicaStore, sync: AgentSync
) -> None:
    request = launch_request(replica_id=1)
    agent = boot_agent(request)
    starting_replica(store, agent.url, request.agent_token)

    (verdict,) = sync_until(sync, store, template("exit 3", "true", request.port), lambda: False)

    assert not verdict.lost
    assert verdict.reason == "replica agent: setup failed with exit code 3"


def test_an_agent_without_this_replicas_token_gets_nothing_and_the_replica_is_lost(
    boot_agent: Boot, store: SqlReplicaStore, sync: AgentSync, tmp_path: Path
) -> None:
    request = launch_request(replica_id=1)
    impostor = boot_agent(request)
    starting_replica(store, impostor.url, "f" * 64)

    (verdict,) = sync_until(sync, store, template(None, "true", request.port), lambda: False)

    assert verdict.lost and "could not prove" in verdict.reason
    assert store.replicas("chat")[0].job_sent_at is None
    assert not (impostor.directory / "job.env").exists(), "no secret went to the impostor"
