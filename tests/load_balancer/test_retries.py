"""Retries: a dead or silent replica costs the client nothing; a started response is final."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until


def _stats(p: Proc) -> dict[str, object]:
    return dict(httpx.get(p.url + "/stats", timeout=5).json())


def test_killing_a_replica_mid_load_cuts_at_most_the_answers_it_had_started(
    procs: ProcessFactory,
) -> None:
    """Every request the killed replica had not started answering is retried on the other; an
    answer it had started is final (below), so the kill may cut at most one per client."""
    a, b = procs.backend("A"), procs.backend("B")
    lb = procs.lb("--replicas", f"{a.url},{b.url}", "--policy", "round_robin")
    statuses: list[int] = []
    cut: list[str] = []
    done = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            while not done.is_set() and len(statuses) < 2000:
                try:
                    statuses.append(http.get(lb.url + "/").status_code)
                except httpx.HTTPError as exc:
                    cut.append(type(exc).__name__)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(statuses) >= 100, "load before the kill")
    a.kill()
    before_kill = len(statuses)
    wait_until(lambda: len(statuses) >= before_kill + 200, "load after the kill")
    done.set()
    for t in threads:
        t.join(10)
    assert statuses.count(200) == len(statuses)
    assert set(cut) <= {"RemoteProtocolError"} and len(cut) <= len(threads), cut


def test_request_in_flight_on_a_replica_that_dies_is_answered_by_another(
    procs: ProcessFactory,
) -> None:
    a, b = procs.backend("A"), procs.backend("B")
    lb = procs.lb("--replicas", f"{a.url},{b.url}", "--policy", "round_robin")
    result: dict[str, httpx.Response] = {}
    thread = threading.Thread(
        target=lambda: result.update(r=httpx.get(lb.url + "/hold", timeout=20))
    )
    thread.start()
    wait_until(lambda: _stats(a)["in_progress"] == 1 or _stats(b)["in_progress"] == 1, "hold")
    doomed, survivor = (a, b) if _stats(a)["in_progress"] == 1 else (b, a)
    doomed.kill()
    wait_until(lambda: _stats(survivor)["in_progress"] == 1, "the retried request")
    httpx.post(survivor.url + "/release")
    thread.join(20)
    assert result["r"].status_code == 200
    assert result["r"].json()["replica"] == _stats(survivor)["name"]


def test_replica_closing_without_answering_is_retried_with_the_body(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    closer = procs.closer()
    good = two_backends[0]
    lb = procs.lb("--replicas", f"{closer.url},{good.url}", "--policy", "round_robin")
    body = b"p" * 5000
    answers = [httpx.post(lb.url + "/echo", content=body, timeout=10) for _ in range(4)]
    assert [r.status_code for r in answers] == [200] * 4
    assert {r.json()["body_bytes"] for r in answers} == {5000}


def test_no_retry_once_the_response_started(procs: ProcessFactory) -> None:
    a, b = procs.backend("A"), procs.backend("B")
    lb = procs.lb("--replicas", f"{a.url},{b.url}")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(lb.url + "/break-after-start", timeout=10)
    hits = [_stats(p)["hits"].get("/break-after-start", 0) for p in (a, b)]  # type: ignore[attr-defined]
    assert sum(hits) == 1


def test_every_replica_failing_answers_502_naming_each_failure(procs: ProcessFactory) -> None:
    c1, c2 = procs.closer(), procs.closer()
    lb = procs.lb("--replicas", f"{c1.url},{c2.url}")
    response = httpx.get(lb.url + "/", timeout=10)
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "all_replicas_failed"
    assert c1.url in body["detail"] and c2.url in body["detail"]


def test_body_larger_than_the_replay_buffer_is_not_retried(procs: ProcessFactory) -> None:
    c1, c2 = procs.closer(), procs.closer()
    lb = procs.lb("--replicas", f"{c1.url},{c2.url}", "--replay-buffer-bytes", "1024")
    body = b"x" * 10_000
    head = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
    with socket.create_connection(("127.0.0.1", lb.port)) as sock:
        sock.sendall(head % len(body) + body)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 502")
    detail = json.loads(reply.split(b"\r\n\r\n", 1)[1])["detail"]
    assert "replay buffer" in detail
    assert detail.count("closed the connection") == 1


def test_two_replicas_dying_at_once_with_pooled_connections_fail_no_request(
    procs: ProcessFactory,
) -> None:
    """A zone taken at once: two of three replicas die while the load balancer holds kept-alive
    connections to them; three attempts reach the survivor."""
    a, b, c = procs.backend("A"), procs.backend("B"), procs.backend("C")
    lb = procs.lb(
        "--replicas", f"{a.url},{b.url},{c.url}", "--policy", "round_robin", "--max-attempts", "3"
    )
    with httpx.Client(timeout=10) as http:
        for _ in range(30):  # every replica has pooled connections now
            assert http.get(lb.url + "/").status_code == 200
        a.kill()
        b.kill()
        statuses = [http.get(lb.url + "/").status_code for _ in range(30)]
    assert statuses == [200] * 30
