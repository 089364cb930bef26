"""`serve logs` and `GET /services/{name}/logs` read only inside that service's log
directory (or the controller's own log), whatever the names, ids and symlinks.

The files planted here stand for what a replica (same user, same log directory) could
leave behind; every one of them holds MARK, which must never come back.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.processes import ControllerProcess

MARK = "OUTSIDE-THE-LOG-DIRECTORY"
SPEC = {
    "service": {"readiness_probe": "/health", "replicas": 0},
    "resources": {"ports": 8080},
    "run": "sleep 600",
}


@pytest.fixture(scope="module")
def planted(
    shared_controller: ControllerProcess, api: httpx.Client, auth: dict[str, str]
) -> Iterator[Path]:
    """Services `a` (with hostile symlinks in its log directory), `b` (another service's
    log) and `c` (whose log directory is itself a symlink out of SERVE_HOME)."""
    for name in ("a", "b", "c"):
        resp = api.post("/api/v1/services", json={"name": name, "spec": SPEC}, headers=auth)
        assert resp.status_code == 201, resp.text
    home = shared_controller.env.home
    services = home / "logs" / "services"
    outside = home.parent / "outside"
    outside.mkdir()
    (outside / "replica-1.log").write_text(MARK)
    (outside / "lb.log").write_text(MARK)
    for name in ("a", "b"):
        (services / name).mkdir(parents=True, exist_ok=True)
    (services / "b" / "replica-1.log").write_text(MARK)
    (home / "logs" / "controller.log").open("a").write("")
    a = services / "a"
    (a / "replica-1.log").symlink_to(outside / "replica-1.log")
    (a / "replica-2.log").symlink_to(Path("..") / ".." / ".." / "token")
    (a / "replica-3.log").symlink_to(Path("..") / "b" / "replica-1.log")
    (a / "replica-4.log").write_text("a's own log line\n")
    (a / "replica-5.log").symlink_to("/etc/passwd")
    # The controller may have started a's load balancer already, which made its own lb.log.
    (a / "lb.log").unlink(missing_ok=True)
    (a / "lb.log").symlink_to(Path("..") / ".." / "controller.log")
    if (services / "c").exists():
        (services / "c").rmdir()
    (services / "c").symlink_to(outside, target_is_directory=True)
    yield outside


def raw_get(url: str, target: str) -> tuple[int, str]:
    """GET with the request target sent byte for byte (httpx would fold `..` away)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_a_services_own_log_is_served(planted: Path, api: httpx.Client) -> None:
    resp = api.get("/api/v1/services/a/logs", params={"replica": 4})
    assert resp.status_code == 200 and resp.text == "a's own log line\n"


@pytest.mark.parametrize(
    "replica",
    [
        pytest.param(1, id="symlink-out-of-serve-home"),
        pytest.param(2, id="symlink-to-the-token"),
        pytest.param(3, id="symlink-to-another-service"),
        pytest.param(5, id="symlink-to-etc-passwd"),
    ],
)
def test_symlinked_replica_logs_pointing_elsewhere_are_404(
    planted: Path, api: httpx.Client, replica: int
) -> None:
    resp = api.get("/api/v1/services/a/logs", params={"replica": replica})
    assert resp.status_code == 404 and resp.json()["error"] == "no_log"
    assert MARK not in resp.text and "root:" not in resp.text


def test_symlinked_lb_log_pointing_at_the_controller_log_is_404(
    planted: Path, api: httpx.Client
) -> None:
    assert api.get("/api/v1/services/a/logs", params={"target": "lb"}).status_code == 404


def test_a_log_directory_that_is_a_symlink_out_is_not_followed(
    planted: Path, api: httpx.Client
) -> None:
    for params in ({"target": "lb"}, {"replica": 1}):
        resp = api.get("/api/v1/services/c/logs", params=params)
        assert resp.status_code == 404 and MARK not in resp.text


@pytest.mark.parametrize(
    "replica", ["../x", "1.5", "-1", "0", "1e3", "%00", "1/../../token", "0x1", " 1; ls", ""]
)
def test_replica_ids_that_are_not_positive_integers_are_422(
    planted: Path, api: httpx.Client, replica: str
) -> None:
    resp = api.get("/api/v1/services/a/logs", params={"replica": replica})
    assert resp.status_code == 422 and resp.json()["error"] == "invalid_request"


@pytest.mark.parametrize("target", ["../../token", "/etc/passwd", "replica/../..", "LB", ""])
def test_unknown_log_targets_are_422(planted: Path, api: httpx.Client, target: str) -> None:
    resp = api.get("/api/v1/services/a/logs", params={"target": target, "replica": 4})
    assert resp.status_code == 422


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../..",
        "../../etc",
        "%2e%2e",
        "%2E%2E%2F%2E%2E%2Fetc",
        "..%2f..%2fetc",
        "%252e%252e%252f",
        "a%2F..%2F..%2F..",
        "a%2F..%2Fb",
        "%2Fetc%2Fpasswd",
        ".",
        "a%00",
        "..%5c..%5cetc",
    ],
)
def test_service_names_that_walk_paths_read_nothing(
    planted: Path, shared_controller: ControllerProcess, name: str
) -> None:
    for query in ("?target=lb", "?replica=1", "?replica=3", "?target=controller"):
        status, body = raw_get(shared_controller.env.url, f"/api/v1/services/{name}/logs{query}")
        assert status in (404, 422), (name, query, status)
        assert MARK not in body and "root:" not in body


def test_absolute_and_dot_segment_request_targets_read_nothing(
    planted: Path, shared_controller: ControllerProcess
) -> None:
    for target in (
        "/api/v1/services/../../../etc/passwd",
        "/api/v1/services/a/../b/logs?replica=1",
        "/api/v1/services//etc/passwd/logs?target=lb",
        "http://127.0.0.1/api/v1/services/b/../a/logs?replica=3",
    ):
        status, body = raw_get(shared_controller.env.url, target)
        assert MARK not in body and "root:" not in body, target
        assert status in (400, 404), (target, status)


@pytest.mark.parametrize(
    "args",
    [
        ["..", "--lb"],
        ["../../etc", "--lb"],
        ["%2e%2e", "--lb"],
        ["/etc/passwd", "--lb"],
        ["a?target=controller&x=", "--lb"],
        ["a/../b", "--replica", "1"],
        ["a", "--replica", "3"],
        ["a", "--replica", "1"],
        ["c", "--lb"],
    ],
)
def test_serve_logs_cannot_be_steered_outside_the_services_log_directory(
    planted: Path, shared_controller: ControllerProcess, args: list[str]
) -> None:
    out = shared_controller.env.serve("logs", *args, timeout=60)
    assert out.returncode != 0
    assert MARK not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("Error:"), out.stderr


def test_serve_logs_rejects_a_replica_id_that_is_not_a_number(
    planted: Path, shared_controller: ControllerProcess
) -> None:
    out = shared_controller.env.serve("logs", "a", "--replica", "../x", timeout=60)
    assert out.returncode == 2 and "Invalid value for '--replica'" in out.stderr
