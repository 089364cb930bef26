"""Bearer-token auth at the wire: every mutation and the load balancer sync need the token,
near-miss tokens are refused, the token file is private, and the read-only API is open or
closed by SERVE_READ_AUTH."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import httpx
import pytest

from tests.support.processes import ControllerProcess, Env

SPEC = {
    "service": {"readiness_probe": "/health", "replicas": 0},
    "resources": {"ports": 8080},
    "run": "sleep 600",
}
MUTATIONS = [
    ("POST", "/api/v1/services", {"name": "intruder", "spec": SPEC}),
    ("PUT", "/api/v1/services/kept", {"spec": SPEC}),
    ("DELETE", "/api/v1/services/kept", None),
    ("PUT", "/api/v1/services/ghost", {"spec": SPEC}),
    ("DELETE", "/api/v1/services/ghost", None),
    ("POST", "/api/v1/services/kept/lb-sync", {"request_count": 1}),
    ("PUT", "/api/v1/market/zones/local-a", {"spot_capacity": 0}),
    ("PUT", "/api/v1/market/driver", {"mode": "random"}),
]
READS = [
    "/api/v1/services",
    "/api/v1/services/kept",
    "/api/v1/services/kept/replicas",
    "/api/v1/services/kept/events",
    "/api/v1/controller",
    "/api/v1/market",
    "/metrics",
]


@pytest.fixture(scope="module", autouse=True)
def kept(api: httpx.Client, auth: dict[str, str]) -> None:
    """A service the refused mutations aim at (zero replicas: nothing launches)."""
    resp = api.post("/api/v1/services", json={"name": "kept", "spec": SPEC}, headers=auth)
    assert resp.status_code == 201, resp.text


def _near_misses(token: str) -> dict[str, str]:
    last = "A" if token[-1] != "A" else "B"
    return {
        "last character differs": token[:-1] + last,
        "prefix": token[:-1],
        "first half": token[: len(token) // 2],
        "one character more": token + "x",
        "other case": token.swapcase() if token.swapcase() != token else token + "!",
    }


@pytest.mark.parametrize(("method", "path", "body"), MUTATIONS)
def test_mutation_without_a_token_is_401(
    api: httpx.Client, method: str, path: str, body: object
) -> None:
    resp = api.request(method, path, json=body)
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized"
    assert resp.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), MUTATIONS)
def test_mutation_with_a_near_miss_token_is_401(
    api: httpx.Client, auth: dict[str, str], method: str, path: str, body: object
) -> None:
    token = auth["Authorization"].removeprefix("Bearer ")
    for what, wrong in _near_misses(token).items():
        resp = api.request(method, path, json=body, headers={"Authorization": f"Bearer {wrong}"})
        assert resp.status_code == 401, what


def test_right_token_in_another_scheme_is_401(api: httpx.Client, auth: dict[str, str]) -> None:
    token = auth["Authorization"].removeprefix("Bearer ")
    for header in (f"Basic {token}", token, f"Bearer{token}", f"Token {token}"):
        resp = api.delete("/api/v1/services/kept", headers={"Authorization": header})
        assert resp.status_code == 401, header


def test_refused_mutations_changed_nothing(api: httpx.Client, auth: dict[str, str]) -> None:
    names = [s["name"] for s in api.get("/api/v1/services").json()]
    assert names == ["kept"]
    kept = api.get("/api/v1/services/kept").json()
    assert kept["version"] == 1 and kept["status"] != "SHUTTING_DOWN"
    zones = api.get("/api/v1/market").json()["zones"]
    assert all(z["spot_capacity"] != 0 for z in zones)


def test_the_right_token_is_accepted(api: httpx.Client, auth: dict[str, str]) -> None:
    resp = api.post("/api/v1/services/kept/lb-sync", json={"request_count": 1}, headers=auth)
    assert resp.status_code == 200


@pytest.mark.parametrize("path", READS)
def test_read_only_api_is_open_by_default(api: httpx.Client, path: str) -> None:
    assert api.get(path).status_code == 200


def test_read_only_api_is_closed_with_serve_read_auth(new_env: Env) -> None:
    new_env.extra["SERVE_READ_AUTH"] = "1"
    new_env.home.mkdir()
    proc = ControllerProcess(new_env).start()
    try:
        with httpx.Client(base_url=new_env.url, timeout=10) as api:
            assert api.get("/healthz").status_code == 200
            for path in ["/api/v1/services", "/api/v1/controller", "/api/v1/market", "/metrics"]:
                assert api.get(path).status_code == 401, path
                wrong = {"Authorization": f"Bearer {new_env.token[:-1]}"}
                assert api.get(path, headers=wrong).status_code == 401, path
                assert api.get(path, headers=new_env.auth()).status_code == 200, path
            logs = api.get("/api/v1/services/x/logs", params={"target": "controller"})
            assert logs.status_code == 401
    finally:
        proc.kill()


def test_serve_status_still_works_when_reads_are_closed(new_env: Env) -> None:
    new_env.extra["SERVE_READ_AUTH"] = "1"
    new_env.home.mkdir()
    proc = ControllerProcess(new_env).start()
    try:
        out = new_env.serve("status", "--json", timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[]"
        new_env.extra["SERVE_TOKEN"] = new_env.token[:-1]
        refused = new_env.serve("status", "--json", timeout=60)
        assert refused.returncode == 1 and "bearer token" in refused.stderr
    finally:
        proc.kill()


def test_token_file_is_0600_in_a_directory_only_its_owner_can_write(new_env: Env) -> None:
    """Even when `serve controller start` runs under umask 000 (some containers do)."""
    started = subprocess.run(
        [sys.executable, "-m", "controller", "controller", "start"],
        env=new_env.vars,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0),
    )
    assert started.returncode == 0, started.stderr
    assert new_env.serve("controller", "stop").returncode == 0
    token = new_env.home / "token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert token.stat().st_uid == os.getuid()
    assert stat.S_IMODE(new_env.home.stat().st_mode) & 0o022 == 0
    assert len(new_env.token) >= 32


def test_a_world_writable_home_and_a_readable_token_are_tightened_at_start(
    new_env: Env,
) -> None:
    new_env.home.mkdir()
    new_env.home.chmod(0o777)
    (new_env.home / "token").write_text("a-token-someone-left-readable\n")
    (new_env.home / "token").chmod(0o644)
    proc = ControllerProcess(new_env).start()
    proc.kill()
    assert stat.S_IMODE(new_env.home.stat().st_mode) == 0o755
    assert stat.S_IMODE((new_env.home / "token").stat().st_mode) == 0o600
    assert new_env.token == "a-token-someone-left-readable"


def test_a_controller_bound_beyond_loopback_refuses_to_serve_open_reads(tmp_path) -> None:
    """Logs, events and metrics must not reach a network without a token by default."""
    env = {
        **os.environ,
        "SERVE_HOME": str(tmp_path / "home"),
        "SERVE_CONTROLLER_HOST": "0.0.0.0",
        "SERVE_CONTROLLER_PORT": "0",
    }
    env.pop("SERVE_READ_AUTH", None)
    out = subprocess.run(
        [sys.executable, "-m", "controller.daemon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "SERVE_READ_AUTH=1" in out.stderr and "SERVE_ALLOW_OPEN_READS=1" in out.stderr


def test_read_auth_lets_a_controller_bind_beyond_loopback(tmp_path) -> None:
    env = Env(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'serve.db'}",
        extra={"SERVE_CONTROLLER_HOST": "0.0.0.0", "SERVE_READ_AUTH": "1"},
    )
    proc = ControllerProcess(env).start()
    try:
        assert httpx.get(f"{env.url}/api/v1/services", timeout=10).status_code == 401
    finally:
        proc.kill()
