"""The lb-sync contract with the controller, against a fake controller HTTP server."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until
from tests.load_balancer.servers import FakeController


def _follow(procs: ProcessFactory, controller: FakeController, token: Path, *extra: str) -> Proc:
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token)]
    return procs.lb(*flags, "--sync-interval", "0.1", *extra)


def _replica_of(lb: Proc, path: str = "/") -> str:
    return str(httpx.get(lb.url + path, timeout=10).json()["replica"])


def test_serves_only_the_replicas_the_controller_reports(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    controller.ready_replicas = [two_backends[1].url]
    lb = _follow(procs, controller, token_file)
    wait_until(lambda: httpx.get(lb.url + "/").status_code == 200, "first sync")
    assert {_replica_of(lb) for _ in range(6)} == {"B"}


def test_dropped_replica_gets_no_new_requests_but_finishes_in_flight_ones(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    a, b = two_backends
    controller.ready_replicas = [a.url]
    lb = _follow(procs, controller, token_file)
    wait_until(lambda: httpx.get(lb.url + "/").status_code == 200, "first sync")
    held: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: held.update(r=httpx.get(lb.url + "/hold", timeout=20)))
    thread.start()
    wait_until(lambda: httpx.get(a.url + "/stats").json()["in_progress"] == 1, "held on A")
    controller.ready_replicas = [b.url]
    wait_until(lambda: _replica_of(lb) == "B", "B takes over")
    assert {_replica_of(lb) for _ in range(4)} == {"B"}
    httpx.post(a.url + "/release")
    thread.join(20)
    assert held["r"].status_code == 200 and held["r"].json()["replica"] == "A"


def test_reports_each_request_once_with_the_bearer_token(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    controller.ready_replicas = [two_backends[0].url]
    lb = _follow(procs, controller, token_file)
    wait_until(lambda: httpx.get(lb.url + "/").status_code == 200, "first sync")
    for _ in range(6):
        httpx.get(lb.url + "/")
    wait_until(lambda: controller.reported_count() == 7, "counts reported")
    assert {auth for auth, _ in controller.syncs} == {"Bearer s3cret-token"}
    assert all(body["window_seconds"] >= 0 for _, body in controller.syncs)


def test_keeps_serving_and_counting_while_the_controller_errors(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    controller.ready_replicas = [two_backends[0].url]
    lb = _follow(procs, controller, token_file)
    wait_until(lambda: httpx.get(lb.url + "/").status_code == 200, "first sync")
    controller.status = 500
    failing_from = len(controller.syncs)
    statuses = [httpx.get(lb.url + "/").status_code for _ in range(5)]
    wait_until(lambda: len(controller.syncs) > failing_from + 1, "syncs failing")
    controller.status = 200
    assert statuses == [200] * 5
    wait_until(lambda: controller.reported_count() == 6, "unreported counts delivered later")


def test_a_report_whose_answer_was_lost_is_sent_again_unchanged_and_counted_once(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    controller.ready_replicas = [two_backends[0].url]
    lb = _follow(procs, controller, token_file)
    wait_until(lambda: httpx.get(lb.url + "/").status_code == 200, "first sync")
    sent, stop = [1], threading.Event()

    def steady() -> None:  # requests all along: every report has some to carry
        while not stop.is_set():
            assert httpx.get(lb.url + "/").status_code == 200
            sent[0] += 1
            stop.wait(0.02)

    client = threading.Thread(target=steady)
    client.start()
    try:
        wait_until(lambda: controller.reported_count() > 3, "reports answered")
        for _ in range(20):  # until a lost report carried requests (a busy client may not)
            controller.lose_answers = True
            lost_from = len(controller.accepted)
            wait_until(lambda n=lost_from + 3: len(controller.accepted) > n, "sent again")
            controller.lose_answers = False
            wait_until(lambda n=lost_from + 6: len(controller.accepted) > n, "answered again")
            seq = controller.accepted[lost_from]["seq"]
            again = [b for b in controller.accepted[lost_from:] if b["seq"] == seq]
            if again[0]["request_count"] > 0:
                break
    finally:
        stop.set()
        client.join()
    wait_until(lambda: controller.reported_count() == sent[0], "every request counted once")
    assert len(again) >= 3 and again[0]["request_count"] > 0, "a report was sent again"
    strip = [{k: v for k, v in b.items() if k != "in_flight"} for b in again]
    assert all(b == strip[0] for b in strip), "sent again unchanged"
    seqs = [body["seq"] for body in controller.accepted]
    assert seqs == sorted(seqs)


def test_service_gone_404_keeps_the_last_replicas_and_logs_it(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    controller.ready_replicas = [two_backends[0].url]
    lb = _follow(procs, controller, token_file)
    wait_until(lambda: httpx.get(lb.url + "/").status_code == 200, "first sync")
    controller.status = 404
    seen = len(controller.syncs)
    wait_until(lambda: len(controller.syncs) > seen + 1, "404 answered")
    assert httpx.get(lb.url + "/").status_code == 200
    assert '"event": "service_gone"' in lb.stderr_text()


def test_policy_from_the_service_overrides_the_command_line(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    controller.ready_replicas = [two_backends[0].url]
    controller.policy = "round_robin"
    lb = _follow(procs, controller, token_file, "--policy", "least_load")
    wait_until(
        lambda: httpx.get(lb.url + "/-/healthz").json()["policy"] == "round_robin", "policy applied"
    )


def test_no_ready_replica_answers_503_with_a_json_reason(
    procs: ProcessFactory, controller: FakeController, token_file: Path
) -> None:
    lb = _follow(procs, controller, token_file)
    wait_until(lambda: len(controller.syncs) >= 1, "first sync")
    response = httpx.get(lb.url + "/v1/chat/completions")
    assert response.status_code == 503
    assert response.json() == {
        "error": "no_ready_replica",
        "detail": "service svc has no ready replica yet; check `serve status svc`",
    }


def test_when_the_first_controller_is_unreachable_the_next_one_is_asked(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    from tests.load_balancer.conftest import free_port

    controller.ready_replicas = [two_backends[0].url]
    live = controller.start()
    dead = f"http://127.0.0.1:{free_port()}"
    flags = [
        "--controller-url",
        f"{dead},{live}",
        "--service",
        "svc",
        "--token-file",
        str(token_file),
    ]
    lb = procs.lb(*flags, "--sync-interval", "0.1")
    wait_until(lambda: httpx.get(lb.url + "/").status_code == 200, "a sync through the second URL")
    assert _replica_of(lb) == "A"
