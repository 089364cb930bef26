"""The server side: one ``asyncio.Protocol`` per client connection, parsed with httptools.

Requests on a connection are answered in order: the first starts forwarding as soon as its
head is parsed (so uploads stream); pipelined ones wait their turn with reading paused. A
request with ``Expect: 100-continue`` gets ``100 Continue`` when its turn comes (never inside
the response before it), and only if none of its body has arrived by then.
Paths under ``/-/`` are the load balancer's own and are never proxied. Until its first sync
with the controller a load balancer proxies nothing (503: it does not know the API keys yet).
With API keys set, any other request needs a valid one (401 otherwise) and its
``Authorization`` header is not forwarded. A WebSocket handshake
the replica accepts (101) turns the connection into a raw two-way tunnel; other upgrades
(h2c, CONNECT) are refused with 501.

While nothing is in flight one deadline runs: ``--keepalive-timeout`` until a request's
first byte, then ``--request-head-timeout`` until the end of its head (408 after that).
Heads over ``--max-head-bytes`` or ``MAX_HEADER_FIELDS`` get 431, and a connection beyond
``--max-connections`` gets 503 before a byte of it is read. A refusal is written once the
responses already owed on the connection are, then the connection closes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import httptools

from load_balancer import api_keys
from load_balancer.client_limits import (
    MAX_HEADER_FIELDS,
    HeadBudget,
    HeadRefused,
    Refusal,
    head_timeout,
    head_too_large,
    too_many_connections,
    too_many_header_fields,
)
from load_balancer.http_head import (
    Headers,
    expects_continue,
    json_response,
    wants_upgrade,
    wants_websocket,
)
from load_balancer.local_endpoints import (
    LocalRequest,
    NotSyncedRequest,
    RefusedRequest,
    UnauthorizedRequest,
)
from load_balancer.proxy_request import ProxyRequest
from load_balancer.telemetry import ErrorKind

if TYPE_CHECKING:
    from load_balancer.proxy_app import ProxyApp

RESERVED_PREFIX = b"/-/"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Exchange(Protocol):
    """A request being answered; ProxyRequest, LocalRequest and RefusedRequest are ones."""

    body_done: bool

    def start(self) -> None: ...
    def body_received(self, data: bytes) -> None: ...
    def body_complete(self) -> None: ...
    def client_gone(self) -> None: ...
    def client_write_paused(self, paused: bool) -> None: ...


class ClientConnection(asyncio.Protocol):
    """Parses client requests and hands them to exchanges; owns the client transport."""

    def __init__(self, app: ProxyApp) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.client_ip = b"unknown"
        self.closed = False
        self._admitted = False
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: Headers = []
        self._parsing: Exchange | None = None
        self._awaiting_continue: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        self._pause_reasons: set[str] = set()
        self.write_paused = False
        self._deadline: asyncio.TimerHandle | None = None
        self._head_begun = False
        self._head_budget = HeadBudget(app.config.max_head_bytes)
        self._refusal: Refusal | None = None
        self._tunnel: Callable[[bytes], None] | None = None
        self._early_tunnel_bytes = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.app.admit_connection():
            self._refuse(too_many_connections(self.app.config.max_connections))
            return
        self._admitted = True
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = str(peer[0]).encode()
        self._wait_for_request()

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel(data)
            return
        while data and self._refusal is None and not self.closed:
            piece, data = self._head_budget.split(data)
            if not self._feed(piece, data):
                return
            if self._head_budget.exhausted:
                self._refuse(head_too_large(self._head_budget.max_bytes))
        self._send_continue_if_due()
        self._watch_unfinished_head()

    def _feed(self, piece: bytes, rest: bytes) -> bool:
        """Parse ``piece``; False once the bytes after it are no longer HTTP requests."""
        try:
            self._parser.feed_data(piece)
        except httptools.HttpParserUpgrade as exc:
            self._early_tunnel_bytes = piece[exc.args[0] :] + rest
            self.pause_reading_for("upgrade")
            return False
        except httptools.HttpParserError as exc:
            # httptools raises a callback's own exception as the __context__ of its error.
            refused = exc.__context__
            if isinstance(refused, HeadRefused):
                self._refuse(refused.refusal)
            else:
                self._reject_malformed(exc)
            return False
        return True

    def start_tunnel(self, forward: Callable[[bytes], None]) -> None:
        """The replica switched protocols: from now on client bytes go to ``forward`` raw."""
        self._tunnel = forward
        if self._early_tunnel_bytes:
            forward(self._early_tunnel_bytes)
            self._early_tunnel_bytes = b""
        self.resume_reading_for("upgrade")

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_begun = True
        self._cancel_deadline()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._headers) >= MAX_HEADER_FIELDS:
            raise HeadRefused(too_many_header_fields())
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_begun = False
        self._head_budget.head_complete()
        self._cancel_deadline()
        exchange = self._make_exchange()
        self._parsing = exchange
        self._queue.append(exchange)
        if len(self._queue) == 1:
            exchange.start()
        else:
            self.pause_reading_for("pipeline")

    def _make_exchange(self) -> Exchange:
        parser = self._parser
        method = parser.get_method()
        keep_alive = parser.should_keep_alive()
        target = _origin_form(self._url)
        if target.startswith(RESERVED_PREFIX):
            return LocalRequest(self, self.app, method, target, keep_alive)
        if self.app.syncs_applied == 0:
            return NotSyncedRequest(self, self.app, keep_alive and not wants_upgrade(self._headers))
        headers = self._headers
        if self.app.api_keys.required:
            refusal = self.app.api_keys.check(headers)
            if refusal is not None:
                keep_alive = keep_alive and not wants_upgrade(headers)
                early = expects_continue(headers)
                return UnauthorizedRequest(self, self.app, refusal, keep_alive, early)
            headers = api_keys.strip(headers)
        websocket = method == b"GET" and wants_websocket(headers)
        if method == b"CONNECT" or (wants_upgrade(headers) and not websocket):
            return RefusedRequest(self, self.app, method, keep_alive)
        http11 = parser.get_http_version() == "1.1"
        request = ProxyRequest(
            self, self.app, method, target, headers, http11, keep_alive, websocket
        )
        if expects_continue(headers):
            self._awaiting_continue = request
        return request

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None:
            if self._awaiting_continue is self._parsing:
                self._awaiting_continue = None
            self._parsing.body_received(body)

    def on_message_complete(self) -> None:
        self._head_budget.message_complete()
        if self._parsing is not None:
            if self._awaiting_continue is self._parsing:
                self._awaiting_continue = None
            self._parsing.body_complete()
            self._parsing = None

    def _send_continue_if_due(self) -> None:
        """``100 Continue`` for the request being answered, if it still waits for one.

        Sent only at the head of the queue, so it never lands inside an earlier response;
        skipped once body bytes arrived (RFC 9110 section 10.1.1 lets a server omit it then).
        """
        waiting = self._awaiting_continue
        if waiting is not None and self._queue and self._queue[0] is waiting:
            self._awaiting_continue = None
            self.write(_CONTINUE)

    def request_finished(self, exchange: Exchange, keep_alive: bool) -> None:
        """Called once per exchange after its response was fully written."""
        if self._queue and self._queue[0] is exchange:
            self._queue.popleft()
        if not keep_alive:
            self.close()
            return
        if self._queue:
            self._send_continue_if_due()
            self._queue[0].start()
            if len(self._queue) == 1:
                self.resume_reading_for("pipeline")
        elif self._refusal is not None:
            self._answer_refusal(self._refusal)
        else:
            self._wait_for_request()

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def pause_reading_for(self, reason: str) -> None:
        if not self._pause_reasons and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._pause_reasons.add(reason)

    def resume_reading_for(self, reason: str) -> None:
        if reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        if not self._pause_reasons and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self._queue:
            self._queue[0].client_write_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._queue:
            self._queue[0].client_write_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_deadline()
        if self._admitted:
            self._admitted = False
            self.app.release_connection()
        while self._queue:
            self._queue.popleft().client_gone()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        """Cut the connection so the client sees a truncated response, not a complete one."""
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def _wait_for_request(self) -> None:
        """Nothing is in flight: the next head must start, or finish, before its deadline."""
        self._cancel_deadline()
        if self._head_begun:
            self._watch_unfinished_head()
        else:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self.app.config.keepalive_timeout, self.close)

    def _watch_unfinished_head(self) -> None:
        """A head still unfinished at the end of a read must end in --request-head-timeout.

        Armed here rather than at its first byte so that the usual head, which arrives in
        one read, costs no timer; not while an earlier request is being answered.
        """
        if self._head_begun and self._deadline is None and not self._queue and not self.closed:
            loop = asyncio.get_running_loop()
            timeout = self.app.config.request_head_timeout
            self._deadline = loop.call_later(timeout, self._head_timed_out)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        self._refuse(head_timeout(self.app.config.request_head_timeout))

    def _refuse(self, refusal: Refusal) -> None:
        """Stop reading; answer with the refusal after the responses already owed, then close.

        The requests before the refused head are complete (their bodies ended before it
        began), so they can still be answered in full.
        """
        self.app.counters.error(refusal.error)
        self._refusal = refusal
        self._cancel_deadline()
        self.pause_reading_for("refused")
        if not self._queue:
            self._answer_refusal(refusal)

    def _answer_refusal(self, refusal: Refusal) -> None:
        self.write(refusal.response())
        self.close()

    def _reject_malformed(self, exc: Exception) -> None:
        self.app.counters.error(ErrorKind.BAD_REQUEST)
        if not self._queue:
            body = b'{"error": "bad_request", "detail": "malformed HTTP request: %s"}' % (
                str(exc).replace('"', "'").encode()
            )
            self.write(json_response(400, body, keep_alive=False))
        self.close()


def _origin_form(url: bytes) -> bytes:
    """Turn an absolute-form target (``http://host/path``) into ``/path``; keep others."""
    if url.startswith((b"http://", b"https://")):
        parts = urlsplit(url)
        path = parts.path or b"/"
        return path + (b"?" + parts.query if parts.query else b"")
    return url or b"/"
