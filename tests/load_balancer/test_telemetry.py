"""Prometheus metrics and the multi-worker layout's shared counts."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.load_balancer.conftest import REPO, Proc, ProcessFactory, wait_until
from tests.load_balancer.servers import FakeController


def _metric(lb: Proc, name: str, **labels: str) -> float:
    text = httpx.get(lb.url + "/-/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def test_metrics_count_answers_by_status_and_latency(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    lb = procs.lb("--replicas", two_backends[0].url)
    for _ in range(3):
        httpx.get(lb.url + "/echo")
    httpx.get(lb.url + "/-/healthz")
    assert _metric(lb, "lb_requests_total", code="200") == 3
    assert _metric(lb, "lb_request_duration_seconds_count") == 3
    assert _metric(lb, "lb_request_duration_seconds_bucket", le="+Inf") == 3


def test_metrics_count_retries_and_error_kinds(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    closer = procs.closer()
    lb = procs.lb("--replicas", f"{closer.url},{two_backends[0].url}", "--policy", "round_robin")
    for _ in range(2):
        assert httpx.get(lb.url + "/echo").status_code == 200
    assert _metric(lb, "lb_retries_total") == 1
    assert _metric(lb, "lb_errors_total", kind="reset_before_response") == 1


def test_metrics_show_requests_in_flight_per_replica(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    replica = two_backends[0]
    lb = procs.lb("--replicas", replica.url)
    thread = threading.Thread(target=lambda: httpx.get(lb.url + "/hold", timeout=20))
    thread.start()
    try:
        wait_until(lambda: _metric(lb, "lb_replica_in_flight", replica=replica.url) == 1, "gauge")
    finally:
        httpx.post(replica.url + "/release")
        thread.join(20)
    wait_until(lambda: _metric(lb, "lb_replica_in_flight", replica=replica.url) == 0, "drained")


def test_workers_report_one_exact_count_and_sum_their_metrics(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    controller.ready_replicas = [r.url for r in two_backends]
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token_file)]
    lb = procs.lb(*flags, "--sync-interval", "0.1", "--workers", "2", wait_ready=2)
    for _ in range(40):
        with httpx.Client() as fresh_connection:
            assert fresh_connection.get(lb.url + "/echo").status_code == 200
    wait_until(lambda: controller.reported_count() == 40, "exact count at the controller")
    assert _metric(lb, "lb_requests_total", code="200") == 40


def test_command_line_without_a_mode_exits_2_naming_the_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "load_balancer", "--port", "1"],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--replicas" in result.stderr and "--controller-url" in result.stderr


def test_closing_a_websocket_releases_its_replica(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc]
) -> None:
    replica = two_backends[0]
    lb = procs.lb("--replicas", replica.url)
    ws_url = lb.url.replace("http://", "ws://") + "/ws"
    with connect(ws_url, open_timeout=10) as ws:
        ws.send("x")
        ws.recv(timeout=10)
        assert _metric(lb, "lb_replica_in_flight", replica=replica.url) == 1
    wait_until(lambda: _metric(lb, "lb_replica_in_flight", replica=replica.url) == 0, "released")
    assert _metric(lb, "lb_requests_total", code="101") == 1
