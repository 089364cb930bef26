"""API keys and `service.tls` through the REST API of a real controller process."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.processes import ControllerProcess, wait_until
from tests.support.tls import self_signed

SERVICE = {"readiness_probe": "/health", "replicas": 1}
SPEC = {"service": SERVICE, "resources": {"ports": 8080}, "run": "sleep 600"}


def with_tls(certfile: str, keyfile: str) -> dict[str, Any]:
    return {**SPEC, "service": {**SERVICE, "tls": {"certfile": certfile, "keyfile": keyfile}}}


@pytest.fixture
def api(controller: ControllerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=controller.env.url, timeout=10, headers=controller.env.auth()
    ) as client:
        yield client


@pytest.fixture
def service(api: httpx.Client) -> str:
    name = f"k{uuid.uuid4().hex[:10]}"
    assert api.post("/api/v1/services", json={"name": name, "spec": SPEC}).status_code == 201
    return name


def sync_hashes(api: httpx.Client, name: str) -> list[str]:
    answer = api.post(f"/api/v1/services/{name}/lb-sync", json={"request_count": 0})
    assert answer.status_code == 200
    return list(answer.json()["api_key_hashes"])


def test_a_key_is_shown_once_and_stored_only_as_its_hash(
    api: httpx.Client, service: str, controller: ControllerProcess
) -> None:
    created = api.post(f"/api/v1/services/{service}/keys", json={"label": "team a"})
    assert created.status_code == 201
    key = created.json()
    assert key["key"].startswith("ssk_") and len(key["key"]) >= 40
    assert key["prefix"] == key["key"][:12] and key["label"] == "team a"
    listed = api.get(f"/api/v1/services/{service}/keys").json()
    assert listed == [{k: key[k] for k in ("id", "prefix", "label", "created_at")}]
    engine = create_engine(controller.env.database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT key_hash FROM api_keys WHERE id = :id"), key).scalar()
        dumped = " ".join(str(r) for r in conn.execute(text("SELECT * FROM api_keys")))
    engine.dispose()
    assert stored == hashlib.sha256(key["key"].encode()).hexdigest()
    assert key["key"] not in dumped
    events = api.get(f"/api/v1/services/{service}/events").text
    assert "api_key_created" in events and key["key"] not in events


def test_the_sync_carries_the_hashes_and_a_revoked_key_leaves_them(
    api: httpx.Client, service: str
) -> None:
    assert sync_hashes(api, service) == []
    one = api.post(f"/api/v1/services/{service}/keys", json={}).json()
    two = api.post(f"/api/v1/services/{service}/keys", json={"label": "ci"}).json()
    hashes = {hashlib.sha256(k["key"].encode()).hexdigest() for k in (one, two)}
    assert set(sync_hashes(api, service)) == hashes
    revoked = api.delete(f"/api/v1/services/{service}/keys/{one['id']}")
    assert revoked.status_code == 200 and revoked.json()["prefix"] == one["prefix"]
    assert revoked.json()["keys_left"] == 1
    assert sync_hashes(api, service) == [hashlib.sha256(two["key"].encode()).hexdigest()]
    again = api.delete(f"/api/v1/services/{service}/keys/{one['id']}")
    assert again.status_code == 404 and again.json()["error"] == "no_such_api_key"


def test_key_routes_need_the_token(controller: ControllerProcess, service: str) -> None:
    with httpx.Client(base_url=controller.env.url, timeout=10) as anonymous:
        for method, path in (
            ("POST", f"/api/v1/services/{service}/keys"),
            ("GET", f"/api/v1/services/{service}/keys"),
            ("DELETE", f"/api/v1/services/{service}/keys/1"),
        ):
            answer = anonymous.request(method, path, json={} if method == "POST" else None)
            assert answer.status_code == 401, (method, path)
            assert answer.headers["www-authenticate"] == "Bearer"


def test_a_key_belongs_to_its_service(api: httpx.Client, service: str) -> None:
    other = f"k{uuid.uuid4().hex[:10]}"
    api.post("/api/v1/services", json={"name": other, "spec": SPEC})
    key = api.post(f"/api/v1/services/{other}/keys", json={}).json()
    assert api.delete(f"/api/v1/services/{service}/keys/{key['id']}").status_code == 404
    assert api.get(f"/api/v1/services/{service}/keys").json() == []
    assert api.post("/api/v1/services/ghost/keys", json={}).json()["error"] == "no_such_service"


@pytest.mark.parametrize("label", ["x" * 65, "new\nline", "<script>"])
def test_a_bad_label_is_422(api: httpx.Client, service: str, label: str) -> None:
    answer = api.post(f"/api/v1/services/{service}/keys", json={"label": label})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_request"


def test_keys_go_with_their_service(
    api: httpx.Client, service: str, controller: ControllerProcess
) -> None:
    api.post(f"/api/v1/services/{service}/keys", json={})
    assert api.delete(f"/api/v1/services/{service}").status_code == 202
    wait_until(lambda: api.get(f"/api/v1/services/{service}").status_code == 404, "service gone")
    engine = create_engine(controller.env.database_url)
    with engine.connect() as conn:
        orphans = conn.execute(
            text("SELECT count(*) FROM api_keys WHERE service_id NOT IN (SELECT id FROM services)")
        ).scalar()
    engine.dispose()
    assert orphans == 0


def test_tls_files_the_controller_cannot_read_are_refused_naming_them(
    api: httpx.Client, tmp_path: Path
) -> None:
    cert, _ = self_signed(tmp_path)
    cases = {
        "relative/key.pem": "service.tls.keyfile: relative/key.pem is a relative path",
        str(tmp_path / "gone.pem"): f"service.tls.keyfile: {tmp_path / 'gone.pem'} is missing",
    }
    for keyfile, says in cases.items():
        spec = with_tls(str(cert), keyfile)
        name = f"t{uuid.uuid4().hex[:10]}"
        answer = api.post("/api/v1/services", json={"name": name, "spec": spec})
        assert answer.status_code == 422 and says in answer.json()["detail"], answer.text
        assert api.get(f"/api/v1/services/{name}").status_code == 404


def test_a_service_with_tls_has_an_https_endpoint(api: httpx.Client, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    spec = with_tls(str(cert), str(key))
    name = f"t{uuid.uuid4().hex[:10]}"
    created = api.post("/api/v1/services", json={"name": name, "spec": spec})
    assert created.status_code == 201, created.text
    assert created.json()["endpoint"].startswith("https://127.0.0.1:")
    assert created.json()["warnings"] == []
