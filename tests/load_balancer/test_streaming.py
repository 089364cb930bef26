"""Streaming both ways, bounded memory, and cancellation when the client leaves."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until


def _stats(p: Proc) -> dict[str, int]:
    return dict(httpx.get(p.url + "/stats", timeout=5).json())


def test_sse_events_arrive_while_the_replica_is_still_streaming(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    a = two_backends[0]
    lb = procs.lb("--replicas", a.url)
    with httpx.stream("GET", lb.url + "/sse?n=3", timeout=10) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line)
        httpx.post(a.url + "/release")
        rest = [line for line in lines if line]
    assert first == "data: token-0"
    assert rest == ["data: token-1", "data: token-2"]


def _send_request_head(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head)
    return sock


def test_upload_reaches_the_replica_before_the_client_finishes_sending(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    a = two_backends[0]
    lb = procs.lb("--replicas", a.url)
    total = 4 << 20
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
        % total
    )
    with _send_request_head(lb.port, head) as sock:
        sock.sendall(b"a" * (1 << 20))
        wait_until(lambda: _stats(a)["upload_bytes_seen"] > 0, "first bytes at the replica")
        sock.sendall(b"a" * (total - (1 << 20)))
        reply = _read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200")
    assert b'"bytes": %d' % total in reply


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def test_one_gib_upload_goes_through_with_bounded_memory(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    a = two_backends[0]
    lb = procs.lb("--replicas", a.url)
    total = 1 << 30
    block = b"z" * (1 << 20)
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
        % total
    )
    with _send_request_head(lb.port, head) as sock:
        for _ in range(total // len(block)):
            sock.sendall(block)
        reply = _read_until_closed(sock)
    assert b'"bytes": %d' % total in reply
    assert _peak_rss_kib(lb.process.pid) < 150 * 1024


def test_download_to_a_client_that_stops_reading_is_held_back_not_buffered(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    a = two_backends[0]
    lb = procs.lb("--replicas", a.url)
    total = 256 << 20
    samples: list[int] = []

    def replica_stalled() -> bool:
        samples.append(_stats(a)["download_bytes_sent"])
        return len(samples) > 5 and samples[-1] == samples[-5] > 0

    request = b"GET /download?bytes=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % total
    with _send_request_head(lb.port, request) as sock:
        wait_until(replica_stalled, "the replica blocked by back-pressure")
        held_back = samples[-1]
        received = len(_read_until_closed(sock))
    assert held_back < total // 2
    assert received > total
    assert _peak_rss_kib(lb.process.pid) < 150 * 1024


def test_client_disconnect_cancels_the_upstream_request(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    a = two_backends[0]
    lb = procs.lb("--replicas", a.url)
    before = _stats(a)["disconnected"]
    sock = _send_request_head(lb.port, b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: _stats(a)["in_progress"] == 1, "request held at the replica")
    sock.close()
    wait_until(lambda: _stats(a)["disconnected"] == before + 1, "replica sees the disconnect")
