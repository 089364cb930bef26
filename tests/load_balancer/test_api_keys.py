"""API keys at the load balancer: hashes from the controller's sync, 401 for the rest.

The fake controller answers the lb-sync call with ``api_key_hashes``; the tests wait on the
load balancer's own count of applied syncs (``/-/healthz``), never on a fixed time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until
from tests.load_balancer.raw_http import RawConnection
from tests.load_balancer.servers import FakeController

ALPHA = "ssk_alpha-key-value-for-tests-0000000000000"
BETA = "ssk_beta-key-value-for-tests-11111111111111"


def hashed(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def health(lb: Proc) -> Any:
    return httpx.get(f"{lb.url}/-/healthz", timeout=5).json()


def keyed_lb(
    procs: ProcessFactory,
    controller: FakeController,
    token: Path,
    backend: Proc,
    *extra: str,
) -> Proc:
    controller.ready_replicas = [backend.url]
    controller.api_key_hashes = [hashed(ALPHA), hashed(BETA)]
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token)]
    lb = procs.lb(*flags, "--sync-interval", "0.1", *extra)
    wait_until(lambda: health(lb)["api_keys"] == 2 and health(lb)["ready_replicas"] == 1, "keys")
    return lb


def after_next_sync(lb: Proc) -> None:
    """Wait until a sync that started after this call has been applied."""
    seen = health(lb)["syncs_applied"]
    wait_until(lambda: health(lb)["syncs_applied"] >= seen + 2, "a full sync")


@pytest.fixture
def lb(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> Proc:
    return keyed_lb(procs, controller, token_file, two_backends[0])


def test_a_request_without_a_key_gets_401_json_and_www_authenticate(lb: Proc) -> None:
    response = httpx.get(f"{lb.url}/v1/models", timeout=5)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "error": "invalid_api_key",
        "detail": "this endpoint needs an API key: send 'Authorization: Bearer <key>'",
    }


def test_an_unknown_key_gets_401(lb: Proc) -> None:
    response = httpx.get(f"{lb.url}/", headers=bearer("ssk_guessed"), timeout=5)
    assert response.status_code == 401
    assert response.json()["detail"].startswith("the API key is not valid for this service")


def test_a_valid_key_passes_and_is_not_forwarded_to_the_replica(lb: Proc) -> None:
    response = httpx.get(f"{lb.url}/echo", headers=bearer(ALPHA), timeout=5)
    assert response.status_code == 200 and response.json()["replica"] == "A"
    assert "authorization" not in {name for name, _ in response.json()["headers"]}
    lowercase = {"Authorization": f"bearer {BETA}"}
    assert httpx.get(f"{lb.url}/", headers=lowercase, timeout=5).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        b"Authorization: Bearer",
        b"Authorization: Bearer    ",
        b"Authorization:",
        b"Authorization: \xff\xfe garbage",
        b"Authorization: Bearer \xc3\x28\xa0\xa1",
        b"Authorization: Bearer " + b"k" * 16000,
        b"Authorization: Bearer " + ALPHA.encode() + b"\r\nAuthorization: Bearer x",
    ],
    ids=[
        "basic",
        "no-key",
        "blank-key",
        "empty",
        "binary",
        "bad-utf8",
        "huge",
        "repeated",
    ],
)
def test_a_malformed_authorization_header_gets_401_never_500(lb: Proc, header: bytes) -> None:
    with RawConnection(lb.port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
        answer = conn.read_response()
        assert answer.status == 401 and answer.json()["error"] == "invalid_api_key"
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ALPHA.encode())
        conn.send(b"\r\n\r\n")
        assert conn.read_response().status == 200


def test_a_refused_body_is_read_and_the_connection_stays_usable(lb: Proc) -> None:
    body = b"x" * 100_000
    with RawConnection(lb.port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        conn.send(body)
        assert conn.read_response().status == 401
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + BETA.encode())
        conn.send(b"\r\n\r\n")
        assert conn.read_response().status == 200


def test_a_client_waiting_for_100_continue_gets_401_at_once(lb: Proc) -> None:
    with RawConnection(lb.port) as conn:
        conn.send(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        answer = conn.read_response()
        assert answer.status == 401
        assert answer.headers.get("connection") == "close"


def test_the_load_balancers_own_paths_need_no_key(lb: Proc) -> None:
    httpx.get(f"{lb.url}/", timeout=5)
    assert httpx.get(f"{lb.url}/-/healthz", timeout=5).status_code == 200
    metrics = httpx.get(f"{lb.url}/-/metrics", timeout=5)
    assert metrics.status_code == 200
    assert 'lb_errors_total{service="svc",kind="invalid_api_key"} 1' in metrics.text
    assert 'lb_requests_total{service="svc",code="401"} 1' in metrics.text


def test_a_revoked_key_stops_working_within_one_sync(lb: Proc, controller: FakeController) -> None:
    assert httpx.get(f"{lb.url}/", headers=bearer(BETA), timeout=5).status_code == 200
    controller.api_key_hashes = [hashed(ALPHA)]
    after_next_sync(lb)
    assert httpx.get(f"{lb.url}/", headers=bearer(BETA), timeout=5).status_code == 401
    assert httpx.get(f"{lb.url}/", headers=bearer(ALPHA), timeout=5).status_code == 200


def test_an_answer_without_hashes_keeps_them_and_an_empty_list_opens(
    lb: Proc, controller: FakeController
) -> None:
    controller.api_key_hashes = None
    after_next_sync(lb)
    assert httpx.get(f"{lb.url}/", timeout=5).status_code == 401
    controller.api_key_hashes = []
    after_next_sync(lb)
    assert health(lb)["api_keys"] == 0
    assert httpx.get(f"{lb.url}/", timeout=5).status_code == 200


def test_every_worker_gets_the_keys_from_the_supervisor(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    lb = keyed_lb(procs, controller, token_file, two_backends[0], "--workers", "2")
    with_key = [httpx.get(f"{lb.url}/", headers=bearer(ALPHA)).status_code for _ in range(10)]
    assert [httpx.get(f"{lb.url}/").status_code for _ in range(10)] == [401] * 10
    assert with_key == [200] * 10
    controller.api_key_hashes = [hashed(BETA)]

    def alpha_refused_everywhere() -> bool:
        codes = {httpx.get(f"{lb.url}/", headers=bearer(ALPHA)).status_code for _ in range(10)}
        return codes == {401}

    wait_until(alpha_refused_everywhere, "every worker to drop the revoked key")


def test_workers_take_a_thousand_keys(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    lb = keyed_lb(procs, controller, token_file, two_backends[0], "--workers", "2")
    controller.api_key_hashes = [hashed(f"ssk_{i:040d}") for i in range(999)] + [hashed(ALPHA)]
    wait_until(lambda: health(lb)["api_keys"] == 1000, "a thousand keys")
    codes = {httpx.get(f"{lb.url}/", headers=bearer(ALPHA)).status_code for _ in range(10)}
    assert codes == {200}


def test_before_its_first_sync_the_load_balancer_lets_nothing_through(
    procs: ProcessFactory,
    controller: FakeController,
    token_file: Path,
    two_backends: tuple[Proc, Proc],
) -> None:
    controller.ready_replicas = [two_backends[0].url]
    controller.api_key_hashes = [hashed(ALPHA)]
    controller.status = 500
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token_file)]
    lb = procs.lb(*flags, "--sync-interval", "0.1", "--wake-wait", "30")
    early = httpx.get(f"{lb.url}/", timeout=5)
    assert early.status_code == 503 and early.headers["retry-after"] == "1"
    assert early.json()["error"] == "not_synced"
    controller.status = 200
    wait_until(lambda: health(lb)["syncs_applied"] >= 1, "the first sync")
    assert httpx.get(f"{lb.url}/", timeout=5).status_code == 401


def test_a_request_without_a_key_never_wakes_a_sleeping_service(
    procs: ProcessFactory, controller: FakeController, token_file: Path
) -> None:
    controller.api_key_hashes = [hashed(ALPHA)]
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token_file)]
    lb = procs.lb(*flags, "--sync-interval", "0.1", "--wake-wait", "30")
    wait_until(lambda: health(lb)["api_keys"] == 1, "the keys")
    syncs = len(controller.accepted)
    assert httpx.get(f"{lb.url}/v1/models", timeout=5).status_code == 401
    assert health(lb)["waiting"] == 0
    after_next_sync(lb)
    reported = sum(int(body["request_count"]) for body in controller.accepted[syncs:])
    assert reported == 0
