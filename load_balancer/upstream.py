"""Keep-alive HTTP/1.1 connections to one replica, and the pool that reuses them.

An ``UpstreamConnection`` serves one exchange at a time and hands every parser event to its
current ``ResponseSink`` (the request being proxied), so response bytes are forwarded from
the parser callback without a task switch. Invariant: a connection goes back to the pool
only after a complete, keep-alive response to a fully sent request.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import httptools

from load_balancer.http_head import Headers


class ResponseSink(Protocol):
    """What a connection reports to the request currently using it."""

    def response_head(
        self, status: int, reason: bytes, headers: Headers, keep_alive: bool
    ) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_complete(self) -> None: ...
    def upstream_lost(self, exc: Exception | None) -> None: ...
    def upstream_write_paused(self, paused: bool) -> None: ...
    def flush(self) -> None: ...
    def tunnel_data(self, data: bytes) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to a replica with an incremental response parser."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.closed = False
        self.received_bytes = False
        self.head_request = False
        self.tunnel = False
        self._parser = httptools.HttpResponseParser(self)
        self._reason = b""
        self._headers: Headers = []
        self._status = 0
        self._replace_parser = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def begin(self, sink: ResponseSink, head_request: bool) -> None:
        self.sink = sink
        self.received_bytes = False
        self.head_request = head_request

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:
            self.abort()
            return
        self.received_bytes = True
        try:
            if self.tunnel:
                sink.tunnel_data(data)
            else:
                self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.tunnel = True
            if rest := data[exc.args[0] :]:
                sink.tunnel_data(rest)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            return
        finally:
            sink.flush()
        if self._replace_parser:
            self._parser = httptools.HttpResponseParser(self)
            self._replace_parser = False

    def on_message_begin(self) -> None:
        self._headers = []
        self._reason = b""

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._is_interim() or self.sink is None:
            return
        self.sink.response_head(
            self._status, self._reason, self._headers, self._parser.should_keep_alive()
        )
        if self.head_request:
            self._replace_parser = True
            self._complete()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None and not self._replace_parser:
            self.sink.response_body(body)

    def on_message_complete(self) -> None:
        if self._status == 101:
            return
        if not self._is_interim() and not self._replace_parser:
            self._complete()

    def _is_interim(self) -> bool:
        """1xx answers other than 101 Switching Protocols precede the real response."""
        return 100 <= self._status < 200 and self._status != 101

    def _complete(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.response_complete()

    def _fail(self, exc: Exception | None) -> None:
        self.abort()
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.upstream_lost(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.upstream_lost(exc)
            sink.flush()

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_write_paused(True)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_write_paused(False)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class ConnectionPool:
    """Idle keep-alive connections to one replica (LIFO, so warm connections stay warm)."""

    def __init__(self, host: str, port: int, connect_timeout: float, max_idle: int = 256) -> None:
        self.host = host
        self.port = port
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle: list[UpstreamConnection] = []
        self.closed = False

    def take_idle(self) -> UpstreamConnection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    async def connect(self) -> UpstreamConnection:
        """Open a new connection; raises OSError or TimeoutError when the replica is unreachable."""
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(UpstreamConnection, self.host, self.port),
            self._connect_timeout,
        )
        return conn

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        if not reusable or conn.closed or self.closed or len(self._idle) >= self._max_idle:
            conn.abort() if not reusable else _close(conn)
            return
        conn.sink = None
        conn.resume_reading()
        self._idle.append(conn)

    def close(self) -> None:
        """Stop reuse (the replica left the ready list); connections in use finish first."""
        self.closed = True
        while self._idle:
            _close(self._idle.pop())


def _close(conn: UpstreamConnection) -> None:
    conn.closed = True
    if conn.transport is not None:
        conn.transport.close()
