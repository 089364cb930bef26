"""Stopping the load balancer: SIGTERM stops accepting and lets requests in flight finish."""

from __future__ import annotations

import signal
import socket
import threading

import httpx

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return True
    return False


def test_sigterm_lets_the_request_in_flight_finish_then_exits_cleanly(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    replica = two_backends[0]
    lb = procs.lb("--replicas", replica.url)
    held: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: held.update(r=httpx.get(lb.url + "/hold", timeout=20)))
    thread.start()
    wait_until(lambda: httpx.get(replica.url + "/stats").json()["in_progress"] == 1, "held")
    lb.process.send_signal(signal.SIGTERM)
    wait_until(lambda: _refuses(lb.port), "listening socket closed")
    httpx.post(replica.url + "/release")
    thread.join(20)
    assert held["r"].status_code == 200
    assert lb.process.wait(10) == 0
