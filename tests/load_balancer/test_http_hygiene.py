"""Headers, framing, timeouts and refusals as an HTTP client sees them."""

from __future__ import annotations

import socket

import httpx
from websockets.sync.client import connect

from tests.load_balancer.conftest import Proc, ProcessFactory


def _echo(lb: Proc, headers: dict[str, str]) -> dict[str, str]:
    body = httpx.get(lb.url + "/echo", headers=headers, timeout=10).json()
    return {k: v for k, v in body["headers"]}


def test_hop_by_hop_headers_are_not_forwarded(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    seen = _echo(
        lb,
        {
            "Connection": "keep-alive, X-Private-Hop",
            "X-Private-Hop": "secret",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic Zm9v",
            "X-End-To-End": "kept",
        },
    )
    assert seen["x-end-to-end"] == "kept"
    for dropped in ("x-private-hop", "keep-alive", "te", "proxy-authorization", "connection"):
        assert dropped not in seen


def test_forwarded_headers_and_host_are_set_for_the_replica(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    replica = two_backends[0]
    lb = procs.lb("--replicas", replica.url)
    seen = _echo(lb, {"Host": "api.example.com"})
    assert seen["host"] == f"127.0.0.1:{replica.port}"
    assert seen["x-forwarded-host"] == "api.example.com"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-for"] == "127.0.0.1"


def test_existing_forwarded_headers_are_appended_to_or_kept(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    seen = _echo(lb, {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"


def test_chunked_request_body_is_forwarded_whole(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    parts = (b"x" * 1000 for _ in range(50))
    response = httpx.post(lb.url + "/echo", content=parts, timeout=10)
    assert response.json()["body_bytes"] == 50_000


def test_head_then_get_on_one_keep_alive_connection(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    with httpx.Client(timeout=10) as client:
        head = client.head(lb.url + "/echo")
        get = client.get(lb.url + "/echo")
    assert head.status_code == 200 and head.content == b""
    assert get.json()["method"] == "GET"


def test_websocket_is_proxied_both_ways(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    ws_url = lb.url.replace("http://", "ws://") + "/ws"
    with connect(ws_url, open_timeout=10) as ws:
        ws.send("hello")
        first = ws.recv(timeout=10)
        ws.send("again")
        second = ws.recv(timeout=10)
    assert (first, second) == ("A echo: hello", "A echo: again")


def test_other_protocol_upgrades_are_refused_with_501_and_a_reason(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    headers = {"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": ""}
    response = httpx.get(lb.url + "/", headers=headers, timeout=10)
    assert response.status_code == 501
    assert response.json()["error"] == "upgrade_not_supported"


def test_replica_silent_past_the_response_timeout_gives_504(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    replica = two_backends[0]
    lb = procs.lb("--replicas", replica.url, "--response-timeout", "0.3")
    try:
        response = httpx.get(lb.url + "/hold", timeout=10)
    finally:
        httpx.post(replica.url + "/release")
    assert response.status_code == 504
    assert "--response-timeout" in response.json()["detail"]


def test_malformed_request_gets_400(procs: ProcessFactory, two_backends: tuple[Proc, Proc]) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    with socket.create_connection(("127.0.0.1", lb.port)) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")


def test_reserved_prefix_is_never_proxied(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    replica = two_backends[0]
    lb = procs.lb("--replicas", replica.url)
    before = httpx.get(replica.url + "/stats").json()["hits"].get("/-/other", 0)
    response = httpx.get(lb.url + "/-/other")
    after = httpx.get(replica.url + "/stats").json()["hits"].get("/-/other", 0)
    assert response.status_code == 404 and after == before
