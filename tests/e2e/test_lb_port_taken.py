"""Another process takes a service's endpoint port while its load balancer is down: the
operator is told (an event, `serve status`, /metrics, the dashboard) and the endpoint comes back on the
same port once it is free."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from contextlib import suppress
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.browser import chromium
from tests.support.processes import Env, processes_of, wait_until

pytestmark = pytest.mark.slow

HELLO = "examples/hello/service.yaml"


def status_json(env: Env) -> dict:
    out = env.serve("status", "hello", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def events_of(env: Env, kind: str) -> list[dict]:
    resp = httpx.get(f"{env.url}/api/v1/services/hello/events", headers=env.auth(), timeout=10)
    return [e for e in resp.json() if e["kind"] == kind]


def service_ticks(env: Env) -> int:
    return int(httpx.get(f"{env.url}/healthz", timeout=10).json()["ticks"]["service_ticks"])


def answers(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def squat(env: Env, port: int) -> socket.socket:
    """Kill the service's load balancer and listen on its port before the controller
    starts another one (retried if the controller got there first)."""

    def attempt() -> socket.socket | None:
        for line in processes_of(env.home):
            if "load_balancer" in line and "hello" in line:
                with suppress(ProcessLookupError):
                    os.kill(int(line.split(":")[0]), signal.SIGKILL)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            return None
        sock.listen()
        return sock

    return wait_until(attempt, f"port {port} to be ours", timeout=30, every=0.05)


def dashboard_shows_the_endpoint_down(env: Env, port: int) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page()
        page.goto(env.url)
        down = page.locator('#services tr[data-service="hello"] .endpoint-down')
        expect(down).to_have_text("DOWN", timeout=60_000)
        expect(down).to_have_attribute("title", re.compile(f"port {port} "))
        page.close()


def test_a_taken_endpoint_port_is_reported_and_the_endpoint_returns_when_freed(
    serve_env: Env,
) -> None:
    env = serve_env
    up = env.serve("up", HELLO, "-n", "hello")
    assert up.returncode == 0, up.stdout + up.stderr
    endpoint = status_json(env)["endpoint"]
    port = urlsplit(endpoint).port
    assert port is not None
    wait_until(lambda: answers(endpoint), "the endpoint to answer")

    squatter = squat(env, port)
    try:
        wait_until(lambda: events_of(env, "lb_port_taken"), "an lb_port_taken event", 60)
        svc = wait_until(
            lambda: (s := status_json(env))["endpoint_down"] and s,
            "serve status to say the endpoint is down",
            60,
        )
        assert f"port {port}" in svc["endpoint_down"]
        assert svc["endpoint"] == endpoint, "the endpoint must not move"
        shown = env.serve("status", "hello")
        assert shown.returncode == 0
        assert "DOWN" in shown.stdout and f"port {port}" in shown.stdout
        metrics = httpx.get(f"{env.url}/metrics", headers=env.auth(), timeout=10).text
        assert 'serve_endpoint_down{service="hello"} 1.0' in metrics
        assert svc["status"] == "READY"  # the replicas are; the reason says the endpoint is not
        # written once for the episode, not at every tick while the port stays taken
        ticks = service_ticks(env)
        wait_until(lambda: service_ticks(env) >= ticks + 3, "three more ticks", 60)
        taken = events_of(env, "lb_port_taken")
        assert len(taken) == 1 and taken[0]["count"] == 1, taken
        dashboard_shows_the_endpoint_down(env, port)
    finally:
        squatter.close()

    wait_until(lambda: answers(endpoint), "the endpoint to answer again on the same port", 60)
    wait_until(lambda: events_of(env, "lb_started"), "an lb_started event", 30)
    assert status_json(env)["endpoint_down"] is None
    metrics = httpx.get(f"{env.url}/metrics", headers=env.auth(), timeout=10).text
    assert 'serve_endpoint_down{service="hello"} 0.0' in metrics
    assert env.serve("down", "hello").returncode == 0
