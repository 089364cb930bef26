"""Requests built to break the parser or the arithmetic behind it get a 4xx JSON answer
naming the problem, and the controller keeps serving (one process takes them all)."""

from __future__ import annotations

import httpx

from tests.support.processes import ControllerProcess, wait_until

SPEC = {
    "service": {"readiness_probe": "/health", "replicas": 1},
    "resources": {"ports": 8080},
    "run": "sleep 600",
}


def _is_clean_4xx(resp: httpx.Response) -> bool:
    return 400 <= resp.status_code < 500 and "error" in resp.json()


def test_json_nested_past_the_parser_limit_is_a_400(
    api: httpx.Client, auth: dict[str, str]
) -> None:
    body = "[" * 100_000 + "]" * 100_000
    resp = api.post(
        "/api/v1/services", content=body, headers={**auth, "content-type": "application/json"}
    )
    assert resp.status_code == 400 and resp.json()["error"] == "bad_request"


def test_body_that_is_not_utf8_json_is_a_400(api: httpx.Client, auth: dict[str, str]) -> None:
    resp = api.post(
        "/api/v1/services",
        content=b"\xff\xfe{",
        headers={**auth, "content-type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["error"] == "bad_request"


def test_replica_count_beyond_any_fleet_is_refused_naming_the_field(
    api: httpx.Client, auth: dict[str, str]
) -> None:
    spec = {**SPEC, "service": {"readiness_probe": "/health", "replicas": 10**30}}
    resp = api.post("/api/v1/services", json={"name": "huge", "spec": spec}, headers=auth)
    assert resp.status_code == 422
    assert resp.json()["issues"][0]["path"] == "service.replicas"
    assert "less than or equal to 1000" in resp.json()["detail"]


def test_replica_policy_counts_are_bounded_too(api: httpx.Client, auth: dict[str, str]) -> None:
    policy = {"min_replicas": 1, "max_replicas": 2**63, "target_qps_per_replica": 1}
    spec = {**SPEC, "service": {"readiness_probe": "/health", "replica_policy": policy}}
    resp = api.post("/api/v1/services", json={"name": "huge", "spec": spec}, headers=auth)
    assert resp.status_code == 422
    assert resp.json()["issues"][0]["path"] == "service.replica_policy.max_replicas"


def test_absurd_load_balancer_report_is_refused_and_the_service_keeps_reconciling(
    api: httpx.Client, auth: dict[str, str]
) -> None:
    policy = {"min_replicas": 1, "max_replicas": 2, "target_qps_per_replica": 1}
    spec = {**SPEC, "service": {"readiness_probe": "/health", "replica_policy": policy}}
    assert (
        api.post("/api/v1/services", json={"name": "rated", "spec": spec}, headers=auth).status_code
        == 201
    )
    resp = api.post("/api/v1/services/rated/lb-sync", json={"request_count": 10**400}, headers=auth)
    assert resp.status_code == 422 and resp.json()["issues"][0]["path"] == "body.request_count"
    wait_until(
        lambda: api.get("/api/v1/services/rated").json()["status"] == "REPLICA_INIT",
        "the next tick to pick the service up",
    )
    assert api.delete("/api/v1/services/rated", headers=auth).status_code == 202


def test_trace_path_the_os_refuses_is_a_422_naming_the_path(
    api: httpx.Client, auth: dict[str, str]
) -> None:
    for path in ("/tmp/a\x00b", "x" * 4000):
        resp = api.put("/api/v1/market/driver", json={"mode": "trace", "path": path}, headers=auth)
        assert resp.status_code == 422, path[:20]
        assert resp.json()["issues"][0]["path"] == "path"


def test_odd_service_names_in_the_path_are_404s(api: httpx.Client) -> None:
    for name in ("%00", "a" * 5000, "%ff%fe", "..%2F..", "%2e%2e", "%20"):
        resp = api.get(f"/api/v1/services/{name}/events")
        assert resp.status_code == 404, name[:20]
        assert resp.json()["error"] in ("no_such_service", "not_found")


def test_none_of_these_requests_reached_the_internal_error_handler(
    shared_controller: ControllerProcess, api: httpx.Client
) -> None:
    """Runs last in this module: the controller is still up and logged no unhandled error."""
    health = api.get("/healthz").json()
    assert (health["status"], health["database"]) == ("ok", "ok")
    log = (shared_controller.env.home / "logs" / "controller.log").read_text()
    assert "unhandled error" not in log and "Exception in ASGI application" not in log
