"""`instance_aware_least_load` chooses by requests in flight per unit of capacity.

Unit tests on the worker's `ReplicaSet` (no sockets are opened: a replica's pool connects
only when a request is sent).
"""

from __future__ import annotations

from load_balancer.balancing import Replica, ReplicaSet
from load_balancer.telemetry import Telemetry

A, B, C = "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"


def _replicas(
    policy: str, weights: dict[str, float] | None, urls: tuple[str, ...] = (A, B)
) -> ReplicaSet:
    replicas = ReplicaSet(policy, Telemetry(1).worker(0), connect_timeout=1.0)
    replicas.update([(url, slot) for slot, url in enumerate(urls)], weights=weights)
    return replicas


def _send(replicas: ReplicaSet, count: int) -> dict[str, int]:
    """Choose and hold `count` requests (none finishes), as concurrent requests do."""
    for _ in range(count):
        chosen = replicas.choose([])
        assert chosen is not None
        replicas.hold(chosen)
    return {r.url: r.in_flight for r in replicas.ready}


def _by_url(replicas: ReplicaSet) -> dict[str, Replica]:
    return {r.url: r for r in replicas.ready}


def test_requests_in_flight_follow_the_weights() -> None:
    replicas = _replicas("instance_aware_least_load", {A: 10.0, B: 4.0})
    assert _send(replicas, 14) == {A: 10, B: 4}


def test_the_lighter_replica_gets_the_next_request_once_the_heavier_is_as_loaded() -> None:
    replicas = _replicas("instance_aware_least_load", {A: 3.0, B: 1.0})
    by_url = _by_url(replicas)
    by_url[A].in_flight, by_url[B].in_flight = 2, 0
    assert replicas.choose([]) is by_url[B]
    by_url[A].in_flight, by_url[B].in_flight = 2, 1
    assert replicas.choose([]) is by_url[A]


def test_least_load_ignores_the_weights() -> None:
    replicas = _replicas("least_load", {A: 10.0, B: 4.0})
    assert _send(replicas, 14) == {A: 7, B: 7}


def test_no_weights_means_equal_weights() -> None:
    replicas = _replicas("instance_aware_least_load", None)
    assert _send(replicas, 6) == {A: 3, B: 3}


def test_a_replica_left_out_of_the_weights_weighs_as_the_smallest_given() -> None:
    replicas = _replicas("instance_aware_least_load", {A: 8.0, B: 2.0}, (A, B, C))
    assert _by_url(replicas)[C].weight == 2.0
    assert _send(replicas, 12) == {A: 8, B: 2, C: 2}


def test_weights_change_with_the_next_update_and_apply_to_known_replicas() -> None:
    replicas = _replicas("instance_aware_least_load", {A: 1.0, B: 3.0})
    kept = _by_url(replicas)[A]
    replicas.update([(A, 0), (B, 1)], weights={A: 3.0, B: 1.0})
    assert _by_url(replicas)[A] is kept and kept.weight == 3.0
    replicas.update([(A, 0), (B, 1)], weights={})
    assert {r.weight for r in replicas.ready} == {1.0}


def test_an_excluded_replica_is_skipped_whatever_its_weight() -> None:
    replicas = _replicas("instance_aware_least_load", {A: 100.0, B: 1.0})
    by_url = _by_url(replicas)
    by_url[B].in_flight = 5
    assert replicas.choose([by_url[A]]) is by_url[B]


def test_the_policy_switches_by_name_from_a_sync() -> None:
    replicas = _replicas("least_load", {A: 10.0, B: 4.0})
    replicas.update([(A, 0), (B, 1)], "instance_aware_least_load", {A: 10.0, B: 4.0})
    assert replicas.policy_name == "instance_aware_least_load"
    assert _send(replicas, 7) == {A: 5, B: 2}
