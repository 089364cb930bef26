"""One client request forwarded to a replica, with bounded retries and streaming both ways.

Invariants:
- never retries once a replica sent the first response byte;
- retries (on another replica while one is left) only when connecting failed or the replica
  closed without answering, and only while every request byte sent so far is still held in
  the replay buffer (``--replay-buffer-bytes``, 1 MiB by default);
- bytes are forwarded from parser callbacks as they arrive; back-pressure pauses the reading
  side instead of buffering (memory per request is bounded by the replay buffer);
- a client that goes away aborts the upstream exchange;
- a WebSocket handshake answered 101 becomes a raw tunnel until either side closes;
- with resume on, a streamed OpenAI answer is forwarded in whole events and, if its replica
  breaks off, continued on another (``stream_watch``); other requests are never parsed;
- the ``usage`` of an OpenAI answer is read from its last bytes (``usage``), per replica.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from load_balancer.balancing import Replica
from load_balancer.http_head import (
    LAST_CHUNK,
    Headers,
    chunk,
    client_response_head,
    framing_of,
    json_response,
    upstream_request_head,
)
from load_balancer.stream_splice import Origin
from load_balancer.stream_watch import StreamWatch
from load_balancer.structured_log import log_event
from load_balancer.telemetry import ErrorKind
from load_balancer.upstream import UpstreamConnection
from load_balancer.usage import UsageMeter

if TYPE_CHECKING:
    from load_balancer.client_connection import ClientConnection
    from load_balancer.proxy_app import ProxyApp

_HEAD, _LOST, _TIMEOUT, _DONE, _TRUNCATED = "head", "lost", "timeout", "done", "truncated"
RETRY_AFTER_SECONDS = 10


class ProxyRequest:
    """Drives the attempts of one request; implements ``upstream.ResponseSink``."""

    def __init__(
        self,
        client: ClientConnection,
        app: ProxyApp,
        method: bytes,
        target: bytes,
        headers: Headers,
        http11: bool,
        keep_alive: bool,
        upgrade: bool = False,
    ) -> None:
        self.client = client
        self.app = app
        self.method = method
        self.target = target
        self.headers = headers
        self.http11 = http11
        self.keep_alive = keep_alive and not upgrade
        self.upgrade = upgrade
        self.body_done = False
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()
        self._body_chunked = framing_of(headers).chunked
        self._replay: list[bytes] | None = []
        self._replay_size = 0
        self._unsent: list[bytes] = []
        self._unsent_size = 0
        self._upstream: UpstreamConnection | None = None
        self._waiter: asyncio.Future[str] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._status = 0
        self._response_started = False
        self._outcome = ""
        self._chunk_response = False
        self._close_delimited = False
        self._upstream_keep_alive = False
        self._client_gone = False
        self._out: list[bytes] = []
        self._tunnel = False
        self._watch = StreamWatch.for_request(app, method, target)
        self._meter = UsageMeter.for_request(method, target)
        app.counters.received()

    def start(self) -> None:
        self._task = self._loop.create_task(self._run())

    def body_received(self, data: bytes) -> None:
        if self._watch is not None:
            self._watch.body_received(data)
        self._forward_body(chunk(data) if self._body_chunked else data)

    def body_complete(self) -> None:
        self.body_done = True
        if self._body_chunked:
            self._forward_body(LAST_CHUNK)
        if self._upstream is not None:
            self._arm_timer()

    def _forward_body(self, framed: bytes) -> None:
        if self._replay is not None:
            self._replay_size += len(framed)
            if self._replay_size <= self.app.config.replay_buffer_bytes:
                self._replay.append(framed)
            else:
                self._replay = None
        if self._upstream is not None:
            self._upstream.write(framed)
            return
        self._unsent.append(framed)
        self._unsent_size += len(framed)
        if self._unsent_size > self.app.config.replay_buffer_bytes:
            self.client.pause_reading_for("body")

    async def _run(self) -> None:
        tried: list[Replica] = []
        failures: list[str] = []
        replicas = self.app.replicas
        waking = not replicas.ready and self.app.wake.wait_seconds > 0
        if waking and not await self._wait_for_a_replica():
            return
        fresh = False
        key = replicas.session_key(self.headers)
        for attempt in range(self.app.config.max_attempts):
            replica = replicas.choose(tried, key)
            if replica is None:
                break
            if attempt:
                self.app.counters.retried()
            replicas.hold(replica)
            try:
                failure, stale = await self._attempt(replica, fresh)
            finally:
                replicas.unhold(replica)
            if failure is None:
                if self._watch is not None and self._watch.broke_at is not None:
                    await self._continue_stream(replica, self._watch)
                return
            fresh = stale
            if not stale:
                tried.append(replica)
            failures.append(f"{replica.url}: {failure}")
            if self._replay is None:
                failures.append("not retried: the request body outgrew the replay buffer")
                break
        self._answer_failure(failures)

    async def _attempt(self, replica: Replica, fresh: bool) -> tuple[str | None, bool]:
        """Return (None, _) once the client got a response, else (why it failed, was the
        failure a stale pooled connection that a fresh one to the same replica may fix)."""
        conn = None if fresh or self.upgrade else replica.pool.take_idle()
        reused = conn is not None
        if conn is None:
            try:
                conn = await replica.pool.connect()
            except (OSError, TimeoutError) as exc:
                self.app.counters.error(ErrorKind.CONNECT_FAILED)
                self.app.replicas.eject(replica)
                return f"connect failed ({exc or type(exc).__name__})", False
        outcome = await self._exchange(conn, replica)
        tokens = self._meter.tokens() if outcome == _DONE and self._meter else None
        if tokens is not None:
            self.app.counters.tokens(replica.slot, *tokens)
        reusable = outcome == _DONE and self._upstream_keep_alive and self.body_done
        reusable = reusable and not self.upgrade
        replica.pool.release(conn, reusable and not self._client_gone)
        if outcome == _LOST:
            self.app.counters.error(ErrorKind.RESET_BEFORE_RESPONSE)
            if not reused:
                self.app.replicas.eject(replica)
            return "closed the connection before answering", reused
        if outcome == _TIMEOUT:
            self.app.counters.error(ErrorKind.RESPONSE_TIMEOUT)
            self._answer_local(504, "response_timeout", self._timeout_detail(replica))
        elif outcome == _TRUNCATED:
            self.app.counters.error(ErrorKind.RESET_DURING_RESPONSE)
            if self._watch is not None and self._watch.needs_resume:
                self._watch.broke_at = self._loop.time()
                return None, False
            self.client.abort()
        self._finish()
        return None, False

    async def _continue_stream(self, broken: Replica, watch: StreamWatch) -> None:
        origin = Origin(self.target, self.headers, self.client.client_ip, self._chunk_response)
        ended_well = await watch.continue_stream(self.client, origin, broken)
        self.keep_alive = self.keep_alive and ended_well
        self._finish()

    async def _exchange(self, conn: UpstreamConnection, replica: Replica) -> str:
        self._response_started = False
        self._outcome = ""
        self._waiter = self._loop.create_future()
        head, _ = upstream_request_head(
            self.method,
            self.target,
            self.headers,
            replica.authority,
            self.client.client_ip,
            self.upgrade,
            self.app.forwarded_proto,
        )
        conn.begin(self, head_request=self.method == b"HEAD")
        self._upstream = conn
        if self.client.write_paused:
            conn.pause_reading()
        body = self._replay if self._replay is not None else self._unsent
        conn.write(head + b"".join(body) if body else head)
        self._unsent.clear()
        self._unsent_size = 0
        self.client.resume_reading_for("body")
        if self.body_done:
            self._arm_timer()
        try:
            outcome = await self._waiter
            if outcome == _HEAD and not self._outcome:
                self._waiter = self._loop.create_future()
                outcome = await self._waiter
            return self._outcome or outcome
        except asyncio.CancelledError:
            conn.abort()
            raise
        finally:
            self._cancel_timer()
            self._upstream = None

    def _wake(self, outcome: str) -> None:
        if outcome in (_DONE, _TRUNCATED):
            self._outcome = outcome
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def _arm_timer(self) -> None:
        if self._timer is None:
            self._timer = self._loop.call_later(self.app.config.response_timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        if not self._response_started:
            if self._upstream is not None:
                self._upstream.abort()
            self._wake(_TIMEOUT)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def response_head(self, status: int, reason: bytes, headers: Headers, keep_alive: bool) -> None:
        self._cancel_timer()
        self._response_started = True
        self._status = status
        self._upstream_keep_alive = keep_alive
        body_allowed = self.method != b"HEAD" and status not in (204, 304)
        framing = framing_of(headers)
        self._close_delimited = (
            body_allowed and not framing.chunked and framing.content_length is None
        )
        head, self._chunk_response, self.keep_alive = client_response_head(
            status, reason, headers, body_allowed, self.keep_alive, self.http11
        )
        self._out.append(head)
        if self._meter is not None and not self._meter.start(status, headers):
            self._meter = None
        if self._watch is not None and not self._watch.track(status, headers, self.body_done):
            self._watch = None
        if status == 101 and self.upgrade:
            self._tunnel = True
            self._upstream_keep_alive = False
            self.client.start_tunnel(self._tunnel_from_client)
        self._wake(_HEAD)

    def _tunnel_from_client(self, data: bytes) -> None:
        if self._upstream is not None:
            self._upstream.write(data)

    def tunnel_data(self, data: bytes) -> None:
        self._out.append(data)

    def response_body(self, data: bytes) -> None:
        if self._meter is not None:
            self._meter.feed(data)
        watch = self._watch
        if watch is not None:
            data = watch.forward(data)
            self._watch = watch if watch.tracking else None
            if not data:
                return
        self._out.append(chunk(data) if self._chunk_response else data)

    def response_complete(self) -> None:
        if self._watch is not None:
            if self._watch.needs_resume:
                self._wake(_TRUNCATED)
                return
            if tail := self._watch.tail():
                self._out.append(chunk(tail) if self._chunk_response else tail)
        if self._chunk_response:
            self._out.append(LAST_CHUNK)
        self._wake(_DONE)

    def flush(self) -> None:
        """Write what one upstream read produced in a single send (head and body together)."""
        out = self._out
        if out:
            self.client.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def upstream_lost(self, exc: Exception | None) -> None:
        if not self._response_started:
            self._wake(_LOST)
        elif self._close_delimited or self._tunnel:
            self._upstream_keep_alive = False
            self.response_complete()
        else:
            self._wake(_TRUNCATED)

    def upstream_write_paused(self, paused: bool) -> None:
        if paused:
            self.client.pause_reading_for("upstream")
        else:
            self.client.resume_reading_for("upstream")

    def client_write_paused(self, paused: bool) -> None:
        upstream = self._upstream
        if upstream is not None:
            upstream.pause_reading() if paused else upstream.resume_reading()
        elif self._watch is not None:
            self._watch.client_write_paused(paused)

    def client_gone(self) -> None:
        """The client closed its connection: stop the upstream exchange (cancels the task)."""
        if self._client_gone:
            return
        self._client_gone = True
        if self._task is not None and not self._task.done():
            self.app.counters.error(ErrorKind.CLIENT_DISCONNECTED)
            self._task.cancel()

    def _answer_failure(self, failures: list[str]) -> None:
        if not failures:
            self.app.counters.error(ErrorKind.NO_READY_REPLICA)
            name = self.app.config.service_label
            detail = f"service {name} has no ready replica yet; check `serve status {name}`"
            self._answer_local(503, "no_ready_replica", detail)
        else:
            self.app.counters.error(ErrorKind.ALL_ATTEMPTS_FAILED)
            log_event(
                "warning", "request_failed", target=self.target.decode("latin-1"), tried=failures
            )
            detail = "every attempt failed: " + "; ".join(failures)
            self._answer_local(502, "all_replicas_failed", detail)
        self._finish()

    async def _wait_for_a_replica(self) -> bool:
        """Hold the request while the service wakes (load_balancer/wake.py); False once it
        was answered 503 instead."""
        wake, name = self.app.wake, self.app.config.service_label
        if wake.full():
            detail = f"service {name} is starting; {wake.bound} requests already wait for it"
        elif await wake.wait(lambda: bool(self.app.replicas.ready)):
            return True
        else:
            detail = f"service {name} had no ready replica within {wake.wait_seconds:g}s"
        self.app.counters.error(ErrorKind.NO_READY_REPLICA)
        self._answer_local(503, "no_ready_replica", detail, retry_after=RETRY_AFTER_SECONDS)
        self._finish()
        return False

    def _timeout_detail(self, replica: Replica) -> str:
        seconds = self.app.config.response_timeout
        return f"{replica.url} sent no response head within {seconds:g}s (--response-timeout)"

    def _answer_local(
        self, status: int, error: str, detail: str, retry_after: int | None = None
    ) -> None:
        self._status = status
        self.keep_alive = self.keep_alive and self.body_done
        body = json.dumps({"error": error, "detail": detail}).encode()
        self.client.write(json_response(status, body, self.keep_alive, retry_after=retry_after))

    def _finish(self) -> None:
        elapsed = self._loop.time() - self._started_at
        self.app.counters.answered(self._status, elapsed)
        self.client.request_finished(self, self.keep_alive and self.body_done)
