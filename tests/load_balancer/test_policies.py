"""Both balancing policies, observed through which replica answered each request."""

from __future__ import annotations

import threading

import httpx

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until


def _replica_of(lb: Proc, path: str = "/") -> str:
    return str(httpx.get(lb.url + path, timeout=10).json()["replica"])


def test_round_robin_alternates_between_replicas(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    a, b = two_backends
    lb = procs.lb("--replicas", f"{a.url},{b.url}", "--policy", "round_robin")
    answers = [_replica_of(lb) for _ in range(6)]
    assert answers[0] != answers[1]
    assert answers == answers[:2] * 3


def test_least_load_avoids_the_replica_with_a_request_in_flight(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    a, b = two_backends
    lb = procs.lb("--replicas", f"{a.url},{b.url}", "--policy", "least_load")
    held: dict[str, str] = {}
    holder = threading.Thread(target=lambda: held.update(r=_replica_of(lb, "/hold")))
    holder.start()

    def stats(p: Proc) -> dict[str, int]:
        return dict(httpx.get(p.url + "/stats").json())

    wait_until(lambda: stats(a)["in_progress"] + stats(b)["in_progress"] == 1, "held request")
    busy = "A" if stats(a)["in_progress"] else "B"
    answers = {_replica_of(lb) for _ in range(5)}
    for p in (a, b):
        httpx.post(p.url + "/release")
    holder.join(10)
    assert held["r"] == busy
    assert answers == {"B" if busy == "A" else "A"}
