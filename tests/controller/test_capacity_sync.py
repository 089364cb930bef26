"""Capacity per replica from its accelerator: the weights the lb-sync answer carries and the
fleet the autoscaler counts, read from real replica rows in a real database.

The runtime runs in-process without its schedule (nothing ticks, so rows written for cloud
instances that do not exist stay as written); the lb-sync call goes through the FastAPI app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.capacity import CapacityTable
from controller.lb_process import start_lb, stop_lb
from controller.runtime import ControllerRuntime
from controller.services import create_service
from controller.spec import load_spec_text
from policies.types import Location, Offer
from replica_manager.records import ReplicaRecord
from replica_manager.records import ReplicaStatus as S
from tests.controller.runtimes import in_process_runtime
from tests.support.processes import free_port, wait_until

PER_ACCELERATOR = """
service:
  readiness_probe: /health
  load_balancing_policy: instance_aware_least_load
  replica_policy:
    min_replicas: 1
    max_replicas: 6
    target_qps_per_replica: {A100: 10, L4: 4}
resources: {ports: 8080, accelerators: {A100: 1, L4: 1}}
run: python3 -m http.server 8080
"""
ONE_NUMBER = PER_ACCELERATOR.replace("{A100: 10, L4: 4}", "4")
GCP_A = Location("gcp", "us-central1", "us-central1-a")
LOCAL = Location("local", "local", "local-a")
A100_VM, L4_VM = "a2-highgpu-1g", "g2-standard-4"  # catalog rows: 1 A100, 1 L4


@pytest.fixture
def rt(db_url: str, tmp_path: Path) -> Iterator[ControllerRuntime]:
    with in_process_runtime(db_url, tmp_path / "home") as runtime:
        yield runtime


def _create(rt: ControllerRuntime, name: str, text: str = PER_ACCELERATOR) -> None:
    create_service(rt.db, rt.settings, rt.clock, name, load_spec_text(text))


WALKS = {
    S.PROVISIONING: (S.PROVISIONING,),
    S.STARTING: (S.PROVISIONING, S.STARTING),
    S.READY: (S.PROVISIONING, S.STARTING, S.READY),
    S.SHUTTING_DOWN: (S.PROVISIONING, S.SHUTTING_DOWN),
}


def _replica(
    rt: ControllerRuntime,
    name: str,
    where: Location,
    instance_type: str,
    status: S = S.READY,
    version: int = 1,
) -> ReplicaRecord:
    """A replica row walked through the lifecycle to `status`, as the replica manager does
    (it learns the replica's URL when the instance starts)."""
    assert rt.reconciler is not None
    store = rt.reconciler.store
    record = store.create_intent(name, version, where, True, instance_type, 1.0, 3.0)
    for step in WALKS[status]:
        if step == S.STARTING:
            record = store.transition(
                record, step, "test", url=f"http://10.0.0.{record.replica_id}:8080"
            )
        else:
            record = store.transition(record, step, "test")
    return record


def _sync(rt: ControllerRuntime, name: str) -> dict[str, Any]:
    client = TestClient(create_app(rt.settings, rt))
    headers = {"Authorization": f"Bearer {rt.token}"}
    answer = client.post(f"/api/v1/services/{name}/lb-sync", json={}, headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_sync_weighs_each_ready_replica_by_its_accelerator(rt: ControllerRuntime) -> None:
    _create(rt, "mixed")
    a100 = _replica(rt, "mixed", GCP_A, A100_VM)
    l4 = _replica(rt, "mixed", GCP_A, L4_VM)
    local = _replica(rt, "mixed", LOCAL, "local-process")
    _replica(rt, "mixed", GCP_A, A100_VM, status=S.STARTING)
    answer = _sync(rt, "mixed")
    assert answer["load_balancing_policy"] == "instance_aware_least_load"
    assert answer["replica_weights"] == {
        a100.url or "": 10.0,
        l4.url or "": 4.0,
        local.url or "": 4.0,  # the catalog cannot name a local process's accelerator
    }
    assert sorted(answer["ready_replicas"]) == sorted(answer["replica_weights"])


def test_sync_has_no_weights_when_the_target_is_one_number(rt: ControllerRuntime) -> None:
    _create(rt, "plain", ONE_NUMBER)
    _replica(rt, "plain", GCP_A, A100_VM)
    answer = _sync(rt, "plain")
    assert len(answer["ready_replicas"]) == 1
    assert "replica_weights" not in answer


def test_the_fleet_counts_live_replicas_of_the_latest_version(rt: ControllerRuntime) -> None:
    _create(rt, "fleet")
    _replica(rt, "fleet", GCP_A, A100_VM)
    _replica(rt, "fleet", GCP_A, L4_VM, status=S.PROVISIONING)
    _replica(rt, "fleet", GCP_A, A100_VM, status=S.SHUTTING_DOWN)
    _replica(rt, "fleet", GCP_A, A100_VM, version=0)
    assert rt.reconciler is not None
    records = rt.reconciler.store.replicas("fleet")
    table = CapacityTable({"A100": 10, "L4": 4})
    l4_first = [Offer(GCP_A, 0.7, 0.2, L4_VM), Offer(GCP_A, 3.7, 1.1, A100_VM)]
    fleet = table.fleet(records, 1, l4_first)
    assert sorted(fleet.live) == [4.0, 10.0]
    assert fleet.next_replica == 4.0
    assert table.fleet(records, 1, l4_first[::-1]).next_replica == 10.0
    assert table.fleet(records, 1, []).next_replica == 4.0


def test_the_load_balancer_the_controller_starts_runs_the_policy_it_is_given(
    rt: ControllerRuntime,
) -> None:
    port = free_port()
    pid = start_lb(rt.settings, "weighed", port, "instance_aware_least_load")

    def policy() -> str | None:
        try:
            return str(httpx.get(f"http://127.0.0.1:{port}/-/healthz", timeout=1).json()["policy"])
        except httpx.HTTPError:
            return None

    try:
        assert wait_until(policy, "the load balancer answering", 20) == "instance_aware_least_load"
    finally:
        stop_lb(pid, "weighed")
