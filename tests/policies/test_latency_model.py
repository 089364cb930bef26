import numpy as np
import pytest

from policies.simulation.engine import ReplicaSpan
from policies.simulation.latency import serve_requests
from tests.policies.builders import A


def span(rid, ready_at=0.0, ended_at=1e6, lost=False):
    return ReplicaSpan(rid, A, True, 0.0, ready_at, ended_at, lost)


def serve(arrivals, spans, service, timeout=100.0):
    out = serve_requests(np.asarray(arrivals, float), spans, np.asarray(service, float), timeout)
    return out.latencies.tolist(), out.failed.tolist()


def test_requests_alternate_between_ready_replicas_and_queue_in_fifo_order():
    latency, failed = serve([0, 1, 2, 3], [span(1), span(2)], [10, 10, 10, 10])
    assert latency == [10, 10, 18, 18]
    assert failed == [False] * 4


def test_request_fails_when_no_replica_is_ready():
    latency, failed = serve([5], [span(1, ready_at=10)], [1])
    assert (latency, failed) == ([100.0], [True])


def test_request_on_a_preempted_replica_fails():
    _, failed = serve([0], [span(1, ended_at=5, lost=True)], [10])
    assert failed == [True]


def test_request_on_a_scaled_down_replica_drains():
    latency, failed = serve([0], [span(1, ended_at=5, lost=False)], [10])
    assert (latency, failed) == ([10.0], [False])


def test_request_waiting_longer_than_the_timeout_is_dropped_without_service():
    latency, failed = serve([0, 0.5, 1], [span(1)], [150, 1, 1])
    assert failed == [True, True, True]
    assert latency == pytest.approx([100, 100, 100])


def test_request_finishing_after_the_timeout_fails():
    _, failed = serve([0], [span(1)], [101])
    assert failed == [True]
