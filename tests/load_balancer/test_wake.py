"""Wake from zero: with no ready replica a request is held (bounded queue, bounded wait),
the load balancer syncs at once, and the request is answered by the first replica."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until
from tests.load_balancer.servers import FakeController


def _follow(procs: ProcessFactory, controller: FakeController, token: Path, *extra: str) -> Proc:
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token)]
    return procs.lb(*flags, *extra)


def test_a_request_to_a_service_at_zero_is_held_until_a_replica_is_ready(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    # A long interval: only the held request's early sync can bring the replica in time.
    lb = _follow(procs, controller, token_file, "--sync-interval", "30", "--wake-wait", "20")
    wait_until(lambda: len(controller.syncs) >= 1, "the first sync")
    answers: list[httpx.Response] = []
    held = threading.Thread(target=lambda: answers.append(httpx.get(lb.url + "/", timeout=30)))
    held.start()
    wait_until(lambda: len(controller.syncs) >= 2, "an early sync reporting the held request")
    assert sum(body["request_count"] for body in controller.accepted) == 1
    controller.ready_replicas = [two_backends[0].url]  # the controller scaled up
    held.join(30)
    assert [a.status_code for a in answers] == [200]


def test_the_wait_runs_out_with_503_and_retry_after_and_the_queue_is_bounded(
    procs: ProcessFactory, controller: FakeController, token_file: Path
) -> None:
    lb = _follow(
        procs, controller, token_file, "--sync-interval", "0.2", "--wake-wait", "3",
        "--wake-queue", "1",
    )  # fmt: skip
    answers: list[tuple[int, float, httpx.Response]] = []
    began = time.monotonic()

    def ask() -> None:
        response = httpx.get(lb.url + "/", timeout=30)
        answers.append((response.status_code, time.monotonic() - began, response))

    first = threading.Thread(target=ask)
    first.start()
    wait_until(lambda: httpx.get(lb.url + "/-/healthz").json()["waiting"] == 1, "one held")
    ask()  # the queue holds one: this one is refused at once
    first.join(30)
    (refused, refused_at, at_once), (timed_out, out_at, late) = answers
    assert (refused, timed_out) == (503, 503)
    assert refused_at < 3 <= out_at, "refused at once; the held one after its wait"
    for response in (at_once, late):
        assert response.headers["retry-after"] == "10"
        assert response.json()["error"] == "no_ready_replica"
    assert "already wait" in at_once.json()["detail"]
    assert "within 3s" in late.json()["detail"]
