"""Bodies over SERVE_MAX_BODY_BYTES (1 MiB) are refused with 413 before the app parses them,
whether the client declares the length or streams the body chunked, on every route that
takes a body; nothing is created and the controller keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

LIMIT = 1024 * 1024
ROUTES = [
    ("POST", "/api/v1/services"),
    ("PUT", "/api/v1/services/svc"),
    ("POST", "/api/v1/services/svc/lb-sync"),
    ("PUT", "/api/v1/market/zones/local-a"),
    ("PUT", "/api/v1/market/driver"),
]


def _oversized() -> bytes:
    """Valid JSON, so only its size can be the reason for a refusal."""
    return json.dumps({"name": "big", "yaml": "x" * (LIMIT + 64 * 1024)}).encode()


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_oversized_body_with_content_length_is_413(
    api: httpx.Client, auth: dict[str, str], method: str, path: str
) -> None:
    body = _oversized()
    resp = api.request(
        method, path, content=body, headers={**auth, "content-type": "application/json"}
    )
    assert resp.status_code == 413
    assert resp.json()["error"] == "too_large"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_oversized_chunked_body_is_413(
    api: httpx.Client, auth: dict[str, str], method: str, path: str
) -> None:
    resp = api.request(
        method,
        path,
        content=_chunks(_oversized()),
        headers={**auth, "content-type": "application/json"},
    )
    assert resp.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in resp.request.headers
    assert resp.status_code == 413
    assert resp.json()["error"] == "too_large"


def test_oversized_body_without_the_token_is_refused_too(api: httpx.Client) -> None:
    resp = api.post(
        "/api/v1/services",
        content=_chunks(_oversized()),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code in (401, 413)


def test_a_body_just_under_the_limit_is_read(api: httpx.Client, auth: dict[str, str]) -> None:
    body = json.dumps({"name": "edge", "yaml": "a: " + "x" * 200_000}).encode()
    assert len(body) < LIMIT
    resp = api.post(
        "/api/v1/services",
        content=_chunks(body),
        headers={**auth, "content-type": "application/json"},
    )
    assert resp.status_code == 422 and resp.json()["error"] == "invalid_spec"


def test_refused_bodies_created_nothing_and_the_controller_serves(api: httpx.Client) -> None:
    assert api.get("/api/v1/services").json() == []
    assert api.get("/healthz").status_code == 200
