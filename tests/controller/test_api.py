"""The REST API of a real controller process, over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controller.bundle import pack
from tests.support.processes import ControllerProcess

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
def auth(controller: ControllerProcess) -> dict[str, str]:
    return controller.env.auth()


@pytest.fixture
def name() -> str:
    return f"s{uuid.uuid4().hex[:10]}"


def names(api: httpx.Client) -> set[str]:
    return {s["name"] for s in api.get("/api/v1/services").json()}


def test_health_answers(api: httpx.Client) -> None:
    health = api.get("/healthz").json()
    assert {k: health[k] for k in ("status", "database", "role")} == {
        "status": "ok",
        "database": "ok",
        "role": "leader",
    }
    assert health["ticks"]["leading"] >= 1


def test_openapi_document_is_served(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert "/api/v1/services/{name}/lb-sync" in paths
    assert api.get("/docs").status_code == 200


def test_mutation_without_token_is_401_with_a_json_reason(name: str, api: httpx.Client) -> None:
    resp = api.post("/api/v1/services", json={"name": name, "spec": SPEC})
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized"
    assert (
        api.post(
            "/api/v1/services",
            json={"name": name, "spec": SPEC},
            headers={"Authorization": "Bearer wrong"},
        ).status_code
        == 401
    )
    assert name not in names(api)


def test_lb_sync_needs_the_token(name: str, api: httpx.Client, auth: dict[str, str]) -> None:
    api.post("/api/v1/services", json={"name": name, "spec": SPEC}, headers=auth)
    assert api.post(f"/api/v1/services/{name}/lb-sync", json={}).status_code == 401
    synced = api.post(f"/api/v1/services/{name}/lb-sync", json={"request_count": 3}, headers=auth)
    assert synced.status_code == 200
    assert synced.json() == {
        "ready_replicas": [],
        "load_balancing_policy": "least_load",
        "resume_streams": False,
        "api_key_hashes": [],
    }


def test_invalid_spec_is_422_with_the_field_path(
    name: str, api: httpx.Client, auth: dict[str, str]
) -> None:
    bad = {**SPEC, "service": {"readiness_probe": "/health", "replcas": 1}}
    resp = api.post("/api/v1/services", json={"name": name, "spec": bad}, headers=auth)
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "invalid_spec"
    assert body["issues"][0]["path"] == "service.replcas"
    assert "did you mean 'replicas'?" in body["issues"][0]["hint"]
    assert name not in names(api)


def test_yaml_text_is_accepted_too(name: str, api: httpx.Client, auth: dict[str, str]) -> None:
    text = "service:\n  readiness_probe: /health\nresources:\n  ports: 8080\nrun: sleep 600\n"
    resp = api.post("/api/v1/services", json={"name": name, "yaml": text}, headers=auth)
    assert resp.status_code == 201 and resp.json()["name"] == name


def test_duplicate_name_is_409(name: str, api: httpx.Client, auth: dict[str, str]) -> None:
    assert (
        api.post("/api/v1/services", json={"name": name, "spec": SPEC}, headers=auth).status_code
        == 201
    )
    resp = api.post("/api/v1/services", json={"name": name, "spec": SPEC}, headers=auth)
    assert resp.status_code == 409 and resp.json()["error"] == "service_exists"


def test_unknown_service_is_404(api: httpx.Client, auth: dict[str, str]) -> None:
    assert api.get("/api/v1/services/nope").json()["error"] == "no_such_service"
    assert api.delete("/api/v1/services/nope", headers=auth).status_code == 404


def test_bad_name_is_refused(api: httpx.Client, auth: dict[str, str]) -> None:
    resp = api.post("/api/v1/services", json={"name": "Bad_Name", "spec": SPEC}, headers=auth)
    assert resp.status_code == 422 and "lowercase" in resp.json()["detail"]


def test_oversized_body_is_413(name: str, api: httpx.Client, auth: dict[str, str]) -> None:
    huge = {"name": name, "spec": {**SPEC, "envs": {"X": "v" * (2 * 1024 * 1024)}}}
    resp = api.post("/api/v1/services", json=huge, headers=auth)
    assert resp.status_code == 413 and resp.json()["error"] == "too_large"


def test_logs_cannot_escape_the_log_directory(
    name: str, api: httpx.Client, auth: dict[str, str]
) -> None:
    api.post("/api/v1/services", json={"name": name, "spec": SPEC}, headers=auth)
    for bad in ("..", "../..", "a%2F..%2F..", "%2e%2e"):
        resp = api.get(f"/api/v1/services/{bad}/logs", params={"target": "lb"})
        assert resp.status_code in (404, 422), bad
    assert api.get(f"/api/v1/services/{name}/logs", params={"replica": "../x"}).status_code == 422
    assert (
        api.get(f"/api/v1/services/{name}/logs", params={"target": "/etc/passwd"}).status_code
        == 422
    )


def test_events_record_what_happened(name: str, api: httpx.Client, auth: dict[str, str]) -> None:
    api.post("/api/v1/services", json={"name": name, "spec": SPEC}, headers=auth)
    kinds = [e["kind"] for e in api.get(f"/api/v1/services/{name}/events").json()]
    assert kinds[0] == "service_created"


def test_metrics_are_prometheus_text(name: str, api: httpx.Client, auth: dict[str, str]) -> None:
    api.post("/api/v1/services", json={"name": name, "spec": SPEC}, headers=auth)
    text = api.get("/metrics").text
    assert f'serve_target_replicas{{service="{name}"}} 1.0' in text
    assert "# TYPE serve_replicas gauge" in text


def test_controller_info_names_its_database(api: httpx.Client) -> None:
    info = api.get("/api/v1/controller").json()
    assert info["pid"] > 0 and info["database"].split(":")[0] in ("sqlite", "postgresql+psycopg")


def test_resources_no_enabled_cloud_offers_are_refused_at_create(
    name: str, api: httpx.Client, auth: dict[str, str]
) -> None:
    spec = {**SPEC, "resources": {"ports": 8080, "cloud": "aws", "accelerators": "A100:8"}}
    resp = api.post("/api/v1/services", json={"name": name, "spec": spec}, headers=auth)
    assert resp.status_code == 422
    assert "SERVE_CLOUDS" in resp.json()["detail"] and "serve check" in resp.json()["detail"]
    assert name not in names(api)


def test_a_bundle_is_kept_only_under_its_own_digest(
    api: httpx.Client, auth: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "app.py").write_text("print('hi')\n")
    bundle = pack(tmp_path / "app", {}, tmp_path / "out")
    assert bundle is not None
    path = f"/api/v1/bundles/{bundle.digest}"
    assert api.head(path).status_code == 404
    body = bundle.path.read_bytes()
    assert api.put(path, content=body).status_code == 401, "uploads need the token"
    wrong = api.put(f"/api/v1/bundles/{'0' * 64}", content=body, headers=auth)
    assert wrong.status_code == 422 and wrong.json()["error"] == "digest_mismatch"
    assert api.put(path, content=body, headers=auth).status_code == 201
    assert api.head(path).status_code == 200
    assert api.put(path, content=body, headers=auth).status_code == 200, "stored once"


def test_a_service_names_its_bundle_and_an_unknown_one_is_refused(
    api: httpx.Client, auth: dict[str, str], name: str
) -> None:
    body = {"name": name, "spec": SPEC, "bundle": "f" * 64}
    resp = api.post("/api/v1/services", json=body, headers=auth)
    assert resp.status_code == 422
    assert "was not uploaded" in resp.text
    assert name not in names(api)


def test_a_spec_with_a_null_secret_is_refused_naming_it(
    api: httpx.Client, auth: dict[str, str], name: str
) -> None:
    spec = {**SPEC, "secrets": {"HF_TOKEN": None}}
    resp = api.post("/api/v1/services", json={"name": name, "spec": spec}, headers=auth)
    assert resp.status_code == 422
    assert resp.json()["issues"][0]["path"] == "secrets.HF_TOKEN"
    assert name not in names(api)


def test_lb_sync_names_the_session_header_under_session_affinity(
    name: str, api: httpx.Client, auth: dict[str, str]
) -> None:
    service = {
        "readiness_probe": "/health",
        "load_balancing_policy": "session_affinity",
        "session_header": "X-Conversation",
    }
    spec = {**SPEC, "service": service}
    api.post("/api/v1/services", json={"name": name, "spec": spec}, headers=auth)
    synced = api.post(f"/api/v1/services/{name}/lb-sync", json={}, headers=auth).json()
    assert synced["load_balancing_policy"] == "session_affinity"
    assert synced["session_header"] == "x-conversation"
