"""Answers the load balancer gives itself: ``/-/healthz``, ``/-/metrics`` and refusals
(501 for upgrades it does not proxy, 401 without a valid API key).

These exchanges never touch a replica. Their body is read and discarded; the answer is
written once the request is complete.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from load_balancer.api_keys import KeyRefusal
from load_balancer.http_head import json_response
from load_balancer.telemetry import ErrorKind

if TYPE_CHECKING:
    from load_balancer.client_connection import ClientConnection
    from load_balancer.proxy_app import ProxyApp

_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"


class _LocalExchange:
    """Waits for the end of the request body, then writes ``answer()``."""

    extra_headers = b""

    def __init__(self, client: ClientConnection, app: ProxyApp, keep_alive: bool) -> None:
        self.client = client
        self.app = app
        self.keep_alive = keep_alive
        self.body_done = False
        self._started = False
        self._answered = False
        self._started_at = asyncio.get_running_loop().time()

    def start(self) -> None:
        self._started = True
        if self.body_done:
            self._respond()

    def body_received(self, data: bytes) -> None:
        pass

    def body_complete(self) -> None:
        self.body_done = True
        if self._started:
            self._respond()

    def client_gone(self) -> None:
        pass

    def client_write_paused(self, paused: bool) -> None:
        pass

    def answer(self) -> tuple[int, bytes, bytes]:
        raise NotImplementedError

    def _respond(self) -> None:
        if self._answered:
            return
        self._answered = True
        status, body, content_type = self.answer()
        self.client.write(
            json_response(
                status, body, self.keep_alive, content_type, extra_headers=self.extra_headers
            )
        )
        self.client.request_finished(self, self.keep_alive)


class LocalRequest(_LocalExchange):
    """``GET /-/healthz`` (liveness plus ready count) and ``GET /-/metrics`` (Prometheus)."""

    def __init__(
        self,
        client: ClientConnection,
        app: ProxyApp,
        method: bytes,
        target: bytes,
        keep_alive: bool,
    ) -> None:
        super().__init__(client, app, keep_alive)
        self.method = method
        self.path = target.split(b"?", 1)[0]

    def answer(self) -> tuple[int, bytes, bytes]:
        if self.method not in (b"GET", b"HEAD"):
            return _error(405, "method_not_allowed", "the /-/ endpoints answer GET only")
        if self.path == b"/-/healthz":
            body = {
                "status": "ok",
                "service": self.app.config.service_label,
                "ready_replicas": len(self.app.replicas.ready),
                "policy": self.app.replicas.policy_name,
                "resume_streams": self.app.resume_streams,
                "waiting": self.app.wake.waiting,
                "syncs_applied": self.app.syncs_applied,
                "api_keys": len(self.app.api_keys),
                "tls": self.app.certificate.health() if self.app.certificate else None,
            }
            return 200, json.dumps(body).encode(), b""
        if self.path == b"/-/metrics":
            return 200, self.app.metrics_text().encode(), _PROMETHEUS
        detail = "the /-/ prefix is reserved; known paths: /-/healthz, /-/metrics"
        return _error(404, "not_found", detail)


class RefusedRequest(_LocalExchange):
    """Non-WebSocket upgrades (h2c, ...) and CONNECT: refused with 501 and a reason, closed."""

    def __init__(
        self, client: ClientConnection, app: ProxyApp, method: bytes, keep_alive: bool
    ) -> None:
        super().__init__(client, app, keep_alive=False)
        self.method = method
        self.body_done = True

    def answer(self) -> tuple[int, bytes, bytes]:
        self.app.counters.error(ErrorKind.UPGRADE_REFUSED)
        self.app.counters.answered(501, 0.0)
        what = (
            "CONNECT tunnels"
            if self.method == b"CONNECT"
            else "protocol upgrades other than WebSocket"
        )
        detail = (
            f"this load balancer does not proxy {what}; use HTTP/1.1, WebSocket or "
            "server-sent events, or connect to a replica directly"
        )
        return _error(501, "upgrade_not_supported", detail)


class UnauthorizedRequest(_LocalExchange):
    """A proxied path without a valid API key: 401, never forwarded. The body is read and
    discarded first, so the connection stays usable; a client that waits for ``100
    Continue`` gets the 401 at once instead (RFC 9110 section 10.1.1) and the connection
    closes, its body unread."""

    extra_headers = b"WWW-Authenticate: Bearer\r\n"

    def __init__(
        self,
        client: ClientConnection,
        app: ProxyApp,
        refusal: KeyRefusal,
        keep_alive: bool,
        before_body: bool = False,
    ) -> None:
        super().__init__(client, app, keep_alive and not before_body)
        self.refusal = refusal
        self.body_done = before_body

    def answer(self) -> tuple[int, bytes, bytes]:
        self.app.counters.error(ErrorKind.INVALID_API_KEY)
        self.app.counters.answered(401, 0.0)
        return _error(401, "invalid_api_key", self.refusal.detail)


class NotSyncedRequest(_LocalExchange):
    """Following a controller that has not answered yet, the load balancer does not know
    the service's API keys (nor has it a replica): 503 with ``Retry-After``, so a request
    is never let through, or held for a wake, before the keys are known."""

    extra_headers = b"Retry-After: 1\r\n"

    def answer(self) -> tuple[int, bytes, bytes]:
        self.app.counters.error(ErrorKind.NOT_SYNCED)
        self.app.counters.answered(503, 0.0)
        name = self.app.config.service_label
        detail = f"the load balancer of {name} has not heard from its controller yet; retry shortly"
        return _error(503, "not_synced", detail)


def _error(status: int, error: str, detail: str) -> tuple[int, bytes, bytes]:
    return status, json.dumps({"error": error, "detail": detail}).encode(), b""
