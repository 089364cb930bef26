"""The service's status and reason, and the endpoint problem read back from the reason."""

from __future__ import annotations

import pytest

from controller.service_status import ServiceStatus, endpoint_problem, service_status
from policies.types import Location
from replica_manager.records import ReplicaRecord, ReplicaStatus

TAKEN = "load balancer port 30001 on 127.0.0.1 is taken by another process: free it"


def record(replica_id: int, status: ReplicaStatus) -> ReplicaRecord:
    return ReplicaRecord(
        row_id=replica_id,
        service="svc",
        replica_id=replica_id,
        version=1,
        status=status,
        status_reason="",
        status_changed_at=0.0,
        launch_token="t",
        spot=False,
        location=Location("local", "local", "local-a"),
        instance_type="cpu",
        price_per_hour=1.0,
        on_demand_price_per_hour=1.0,
        created_at=0.0,
    )


def test_ready_replicas_behind_a_taken_port_are_ready_with_the_endpoint_down():
    replicas = [record(1, ReplicaStatus.READY), record(2, ReplicaStatus.READY)]
    status, reason = service_status(ServiceStatus.READY, replicas, 2, 0, 3, lb_problem=TAKEN)
    assert status == ServiceStatus.READY
    assert reason == f"endpoint down: {TAKEN}; 2 of 2 replicas ready"
    assert endpoint_problem(reason) == TAKEN


def test_a_problem_with_its_own_separator_is_read_back_whole():
    problem = "port 1 is taken; free it"
    _, reason = service_status(ServiceStatus.READY, [], 1, 0, 3, lb_problem=problem)
    assert endpoint_problem(reason) == "port 1 is taken, free it"


@pytest.mark.parametrize(
    "current", [ServiceStatus.READY, ServiceStatus.REPLICA_INIT, ServiceStatus.NO_REPLICA]
)
def test_without_a_problem_the_endpoint_is_not_down(current):
    _, reason = service_status(current, [record(1, ReplicaStatus.READY)], 1, 0, 3)
    assert reason == "1 of 1 replicas ready" and endpoint_problem(reason) is None


def test_a_service_going_down_says_nothing_of_its_endpoint():
    status, reason = service_status(ServiceStatus.SHUTTING_DOWN, [], 0, 0, 3, lb_problem=TAKEN)
    assert status == ServiceStatus.SHUTTING_DOWN and endpoint_problem(reason) is None
