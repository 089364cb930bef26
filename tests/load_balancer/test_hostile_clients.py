"""Clients that are slow, huge, too many or out of order get a clear answer and cost the load
balancer little; every test speaks raw bytes to a real load balancer process."""

from __future__ import annotations

from tests.load_balancer.conftest import Proc, ProcessFactory
from tests.load_balancer.raw_http import RawConnection

PARTIAL_HEAD = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: "


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
