"""Clients that are slow, huge, too many or out of order get a clear answer and cost the load
balancer little; every test speaks raw bytes to a real load balancer process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until
from tests.load_balancer.raw_http import RawConnection, rss_kib

PARTIAL_HEAD = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: "
HEALTHZ = b"GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def _header_that_never_ends(total: int, part: int) -> Iterator[bytes]:
    """A request head of ``total`` bytes, one header value long, in ``part``-byte writes."""
    yield PARTIAL_HEAD
    for _ in range(total // part):
        yield b"a" * part


def _many_headers(total: int, part: int) -> Iterator[bytes]:
    """A request head of ``total`` bytes of ``part``-byte headers, one header per write."""
    yield b"GET /echo HTTP/1.1\r\nHost: x\r\n"
    for i in range(total // part):
        name = b"X-Pad-%08d: " % i
        yield name + b"a" * (part - len(name) - 2) + b"\r\n"


def _error_count(lb: Proc, kind: str) -> int:
    """``lb_errors_total{kind=...}`` from ``/-/metrics`` (on a connection of its own)."""
    text = httpx.get(lb.url + "/-/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("lb_errors_total{") and f'kind="{kind}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    raise AssertionError(f"no lb_errors_total for kind {kind}")


def test_request_head_not_finished_within_the_head_timeout_gets_408_and_is_closed(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url, "--request-head-timeout", "0.5")
    with RawConnection(lb.port) as conn:
        conn.send(PARTIAL_HEAD)
        response = conn.read_response()
        rest = conn.read_until_closed()
    assert response.status == 408
    assert response.headers["connection"] == "close"
    assert response.json()["error"] == "request_timeout"
    assert "--request-head-timeout" in response.json()["detail"]
    assert rest == b""


def test_request_head_over_the_size_cap_gets_431_and_the_connection_closes(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url, "--max-head-bytes", "16384")
    with RawConnection(lb.port) as conn:
        conn.send_until_refused(_header_that_never_ends(total=4 << 20, part=4096))
        response = conn.read_response()
        rest = conn.read_until_closed()
    assert response.status == 431
    assert response.headers["connection"] == "close"
    assert response.json()["error"] == "request_header_fields_too_large"
    assert "--max-head-bytes" in response.json()["detail"]
    assert rest == b""


def _head_of(size: int) -> bytes:
    start, end = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


def test_a_head_of_exactly_max_head_bytes_is_served_and_one_byte_more_is_not(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url, "--max-head-bytes", "2048")
    with RawConnection(lb.port) as at_cap, RawConnection(lb.port) as over_cap:
        at_cap.send(_head_of(2048))
        over_cap.send(_head_of(2049))
        statuses = (at_cap.read_response().status, over_cap.read_response().status)
    assert statuses == (200, 431)


def test_32_mib_of_headers_are_refused_without_growing_the_load_balancer(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    before = rss_kib(lb.process.pid)
    with RawConnection(lb.port) as conn:
        sent = conn.send_until_refused(_many_headers(total=32 << 20, part=8192))
        grown_kib = rss_kib(lb.process.pid) - before
        assert grown_kib < 4 * 1024
        assert sent < 32 << 20
        assert conn.read_response().status == 431


def test_more_than_100_header_fields_get_431(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    fields = b"".join(b"X-Field-%d: v\r\n" % i for i in range(101))
    with RawConnection(lb.port) as conn:
        conn.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        response = conn.read_response()
        rest = conn.read_until_closed()
    assert response.status == 431
    assert "100 header fields" in response.json()["detail"]
    assert rest == b""


def test_head_over_the_cap_behind_a_request_in_flight_is_refused_after_its_response(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    replica = two_backends[0]
    lb = procs.lb("--replicas", replica.url, "--max-head-bytes", "16384")
    with RawConnection(lb.port) as conn:
        conn.send(b"GET /sse?n=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.wait_for(b"token-0")
        conn.send(b"".join(_header_that_never_ends(total=64 << 10, part=4096)))
        wait_until(lambda: _error_count(lb, "request_header_fields_too_large") == 1, "refusal")
        httpx.post(replica.url + "/release", timeout=10)
        first = conn.read_response()
        refused = conn.read_response()
        rest = conn.read_until_closed()
    assert (first.status, first.body) == (200, b"data: token-0\n\ndata: token-1\n\n")
    assert refused.status == 431
    assert rest == b""


def _served_connection(port: int) -> RawConnection:
    """A connection the load balancer answered 200 on (earlier ones may still be closing)."""
    opened: list[RawConnection] = []

    def served() -> bool:
        conn = RawConnection(port)
        conn.send(HEALTHZ)
        if conn.read_response().status == 200:
            opened.append(conn)
            return True
        conn.close()
        return False

    wait_until(served, "a connection the load balancer serves")
    return opened[0]


def test_connection_beyond_the_cap_is_shed_with_503_while_open_ones_keep_working(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url, "--max-connections", "3")
    open_ones = [_served_connection(lb.port) for _ in range(3)]
    with RawConnection(lb.port) as extra:
        shed = extra.read_response()
        assert extra.read_until_closed() == b""
    open_ones[0].send(HEALTHZ)
    still_served = open_ones[0].read_response()
    open_ones.pop().close()
    replacement = _served_connection(lb.port)
    for conn in [*open_ones, replacement]:
        conn.close()
    assert shed.status == 503
    assert shed.headers["connection"] == "close"
    assert shed.headers["retry-after"] == "1"
    assert shed.json()["error"] == "too_many_connections"
    assert still_served.status == 200


EXPECT_CONTINUE = (
    b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
)
SLOW_THEN_EXPECT_CONTINUE = b"GET /sse?n=2 HTTP/1.1\r\nHost: x\r\n\r\n" + EXPECT_CONTINUE


def test_request_expecting_100_continue_gets_it_before_sending_its_body(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    with RawConnection(lb.port) as conn:
        conn.send(EXPECT_CONTINUE)
        interim = conn.read_response()
        conn.send(b"hello")
        final = conn.read_response()
    assert interim.status == 100
    assert (final.status, final.json()["body_bytes"]) == (200, 5)


def test_100_continue_of_a_pipelined_request_waits_until_the_response_before_it_is_complete(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    replica = two_backends[0]
    lb = procs.lb("--replicas", replica.url)
    with RawConnection(lb.port) as conn:
        conn.send(SLOW_THEN_EXPECT_CONTINUE)
        conn.wait_for(b"token-0")
        httpx.post(replica.url + "/release", timeout=10)
        first = conn.read_response()
        interim = conn.read_response()
        conn.send(b"hello")
        second = conn.read_response()
    assert (first.status, first.body) == (200, b"data: token-0\n\ndata: token-1\n\n")
    assert interim.status == 100
    assert (second.status, second.json()["body_bytes"]) == (200, 5)


def test_no_100_continue_when_the_body_arrived_before_the_request_was_answered(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    replica = two_backends[0]
    lb = procs.lb("--replicas", replica.url)
    with RawConnection(lb.port) as conn:
        conn.send(SLOW_THEN_EXPECT_CONTINUE + b"hello")
        conn.wait_for(b"token-0")
        httpx.post(replica.url + "/release", timeout=10)
        first = conn.read_response()
        second = conn.read_response()
    assert (first.status, first.body) == (200, b"data: token-0\n\ndata: token-1\n\n")
    assert (second.status, second.json()["body_bytes"]) == (200, 5)
