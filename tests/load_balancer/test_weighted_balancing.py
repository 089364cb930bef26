"""`instance_aware_least_load` end to end: a real load balancer following a fake controller
that answers `replica_weights`, in front of two real replicas holding requests open.

Each held request stays in flight until the test releases it, so what the load balancer
chose is read off the replicas (`/stats`), never inferred from timing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until
from tests.load_balancer.servers import FakeController


def _follow(procs: ProcessFactory, controller: FakeController, token: Path, *extra: str) -> Proc:
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token)]
    return procs.lb(*flags, "--sync-interval", "0.1", *extra, wait_ready=2)


def _held(backend: Proc) -> int:
    return int(httpx.get(backend.url + "/stats").json()["in_progress"])


def _hold(lb: Proc, threads: list[threading.Thread]) -> None:
    thread = threading.Thread(target=lambda: httpx.get(lb.url + "/hold", timeout=30))
    thread.start()
    threads.append(thread)


def _release(backends: tuple[Proc, Proc], threads: list[threading.Thread]) -> None:
    for backend in backends:
        httpx.post(backend.url + "/release")
    for thread in threads:
        thread.join(30)


def test_the_heavier_replica_takes_proportionally_more_concurrent_requests(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    a, b = two_backends
    controller.ready_replicas = [a.url, b.url]
    controller.policy = "instance_aware_least_load"
    controller.replica_weights = {a.url: 3.0, b.url: 1.0}
    lb = _follow(procs, controller, token_file)
    threads: list[threading.Thread] = []
    for _ in range(8):
        _hold(lb, threads)
    try:
        wait_until(lambda: _held(a) + _held(b) == 8, "eight requests held")
        assert (_held(a), _held(b)) == (6, 2)
    finally:
        _release(two_backends, threads)


def test_without_weights_the_same_policy_spreads_evenly(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    a, b = two_backends
    controller.ready_replicas = [a.url, b.url]
    controller.policy = "instance_aware_least_load"
    lb = _follow(procs, controller, token_file)
    threads: list[threading.Thread] = []
    for _ in range(8):
        _hold(lb, threads)
    try:
        wait_until(lambda: _held(a) + _held(b) == 8, "eight requests held")
        assert (_held(a), _held(b)) == (4, 4)
    finally:
        _release(two_backends, threads)


def test_workers_get_the_weights_from_the_supervisor(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    """Two workers each balance their own requests in flight, so the split is per worker:
    with B three times A, 16 requests held one after the other put at least 11 on B however
    the kernel shares them between the workers (equal weights would put at most 9)."""
    a, b = two_backends
    controller.ready_replicas = [a.url, b.url]
    controller.policy = "instance_aware_least_load"
    controller.replica_weights = {a.url: 1.0, b.url: 3.0}
    lb = _follow(procs, controller, token_file, "--workers", "2")
    threads: list[threading.Thread] = []
    try:
        for sent in range(1, 17):
            _hold(lb, threads)
            wait_until(lambda n=sent: _held(a) + _held(b) == n, f"{sent} requests held")
        assert _held(b) >= 11
    finally:
        _release(two_backends, threads)
