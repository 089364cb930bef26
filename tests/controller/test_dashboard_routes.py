"""The dashboard's page and files, and the history API behind its chart, on a real
controller process over real HTTP (the page itself is tested in a browser:
tests/e2e/test_dashboard.py)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import ControllerProcess, Env, kill_everything_of, wait_until

SPEC = {
    "service": {"readiness_probe": "/health", "replicas": 1},
    "resources": {"ports": 8080},
    "run": "sleep 600",
}


@pytest.fixture
def api(controller: ControllerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=controller.env.url, timeout=10) as client:
        yield client


@pytest.fixture
def service(controller: ControllerProcess, api: httpx.Client) -> str:
    name = f"s{uuid.uuid4().hex[:10]}"
    created = api.post(
        "/api/v1/services", json={"name": name, "spec": SPEC}, headers=controller.env.auth()
    )
    assert created.status_code == 201, created.text
    return name


def test_the_root_url_is_the_dashboard_under_a_strict_content_security_policy(
    api: httpx.Client,
) -> None:
    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>spotserve</title>" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp


def test_every_file_the_page_loads_is_served_with_its_type(api: httpx.Client) -> None:
    page = api.get("/").text
    named = set(re.findall(r'"/dashboard/([\w.-]+)"', page))
    assert {"app.js", "style.css", "favicon.svg"} <= named
    scripts = [api.get(f"/dashboard/{n}").text for n in named if n.endswith(".js")]
    named |= {m for s in scripts for m in re.findall(r'from "\./([\w.-]+)"', s)}
    types = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
    for name in named:
        resp = api.get(f"/dashboard/{name}")
        assert resp.status_code == 200, name
        assert resp.headers["content-type"].startswith(types[name.rsplit(".", 1)[1]]), name


@pytest.mark.parametrize("path", ["/dashboard/index.py", "/dashboard/..%2f__init__.py"])
def test_a_file_the_dashboard_does_not_ship_is_a_404(api: httpx.Client, path: str) -> None:
    resp = api.get(path)
    assert resp.status_code == 404
    assert resp.json()["error"] in {"no_such_file", "not_found"}


def test_history_of_an_unknown_service_is_a_404(api: httpx.Client) -> None:
    resp = api.get("/api/v1/services/nobody/history")
    assert resp.status_code == 404
    assert resp.json()["error"] == "no_such_service"


def last_point(api: httpx.Client, name: str) -> dict[str, Any] | None:
    points = api.get(f"/api/v1/services/{name}/history").json()["points"]
    return points[-1] if points else None


def test_history_follows_the_services_target_and_cost(api: httpx.Client, service: str) -> None:
    def agreed() -> dict[str, Any] | None:
        cost = api.get(f"/api/v1/services/{service}").json()["cost"]
        last = last_point(api, service)
        same = (
            last is not None
            and last["target"] == 1
            and last["cost_per_hour"] == cost["per_hour"] > 0
            and last["on_demand_cost_per_hour"] == cost["on_demand_per_hour"]
        )
        return last if same else None

    last = wait_until(agreed, "the history to show the launched replica's cost")
    assert last["ready_spot"] == last["ready_on_demand"] == 0


def test_history_since_a_time_starts_with_the_point_holding_then(
    api: httpx.Client, service: str
) -> None:
    wait_until(lambda: last_point(api, service), "a first sample")
    body = api.get(f"/api/v1/services/{service}/history").json()
    assert body["sampled_at"] >= body["points"][-1]["at"]
    recent = api.get(
        f"/api/v1/services/{service}/history", params={"since": body["sampled_at"] + 3600}
    ).json()
    assert len(recent["points"]) == 1


def test_history_needs_the_token_when_reads_do(tmp_path: Path) -> None:
    env = Env(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'serve.db'}")
    env.extra["SERVE_READ_AUTH"] = "1"
    proc = ControllerProcess(env).start()
    try:
        url = f"{env.url}/api/v1/services/nobody/history"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers=env.auth()).status_code == 404
        assert httpx.get(f"{env.url}/").status_code == 200, "the page itself holds no data"
    finally:
        proc.kill()
        kill_everything_of(env.home)
