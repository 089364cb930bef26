"""Continuing a broken OpenAI stream on other replicas, spliced into the client's response.

Runs in the task of the client's request, after the replica that was streaming broke off
before ``data: [DONE]`` and before any ``finish_reason``. Invariants:

- the client's response head came from the first replica; a continuation's head is checked
  (200 ``text/event-stream``) and never forwarded;
- only whole events reach the client, rewritten by the ``StreamTracker`` (original ``id``, no
  second role chunk), so it sees one stream with no repeated and no missing text;
- at most ``--max-resumes`` continuations per stream that a replica answered, each on a
  replica that has not failed this stream yet (one that does not answer at all costs no
  resume: the next replica is tried, until none is left); connecting and waiting for the
  head are bounded by ``--connect-timeout`` and ``--response-timeout``;
- the client's stream always ends: with the continuation's own end, with ``data: [DONE]`` when
  the token budget is spent, or with a ``stream_resume_failed`` error event and a close.

Attempt outcomes: no answer (connect failed, closed before the head) tries the next replica;
a wrong answer (not 200 SSE, or no head in time) ends the stream with the error event; a
continuation that breaks again is resumed again while attempts remain.
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from load_balancer.balancing import Replica
from load_balancer.http_head import LAST_CHUNK, Headers, chunk, upstream_request_head
from load_balancer.stream_resume import ResumableRequest, continuation_body, is_event_stream
from load_balancer.stream_tracker import StreamTracker
from load_balancer.structured_log import log_event
from load_balancer.telemetry import ErrorKind
from load_balancer.upstream import UpstreamConnection
from load_balancer.usage import UsageMeter

if TYPE_CHECKING:
    from load_balancer.client_connection import ClientConnection
    from load_balancer.proxy_app import ProxyApp

_DONE_EVENT = b"data: [DONE]\n\n"
_FRAMING = (b"content-length", b"transfer-encoding")


class Outcome(enum.Enum):
    COMPLETE = "complete"
    BROKEN = "broken"
    UNANSWERED = "unanswered"
    REFUSED = "refused"


@dataclass(frozen=True)
class Origin:
    """The client's request as the continuation re-sends it, and how its response is framed."""

    target: bytes
    headers: Headers
    client_ip: bytes
    chunked: bool


class StreamSplice:
    """Drives the continuation attempts of one broken stream."""

    def __init__(
        self,
        app: ProxyApp,
        client: ClientConnection,
        origin: Origin,
        request: ResumableRequest,
        tracker: StreamTracker,
    ) -> None:
        self.app = app
        self.client = client
        self.origin = origin
        self.request = request
        self.tracker = tracker
        self._loop = asyncio.get_running_loop()
        self._upstream: UpstreamConnection | None = None
        self._waiting_since: float | None = None
        self._broken_on = ""
        self._events_at_break = 0

    async def run(self, broken: Replica, broke_at: float) -> bool:
        """Finish the client's stream; True when it ended well (the connection may be kept)."""
        tried = [broken]
        self._note_break(broken, broke_at)
        resumes = 0
        while resumes < self.app.config.max_resumes:
            body = continuation_body(self.request, self.tracker.text, self.tracker.events)
            if body is None:
                self.write(_DONE_EVENT)
                return self._end()
            replica = self.app.replicas.choose(tried)
            if replica is None:
                return self._fail("no other ready replica to continue on")
            tried.append(replica)
            self.app.replicas.hold(replica)
            try:
                outcome, detail = await self._attempt(replica, body)
            finally:
                self.app.replicas.unhold(replica)
            if outcome is Outcome.UNANSWERED:
                continue  # a replica gone too (a zone preempted at once): the next one
            resumes += 1
            if outcome is Outcome.COMPLETE:
                return self._end()
            if outcome is Outcome.REFUSED:
                return self._fail(detail)
            if outcome is Outcome.BROKEN:
                if not self.tracker.needs_resume:
                    return self._fail(f"{detail}; cannot resume: {self.tracker.refused}")
                self._note_break(replica, self._loop.time())
        return self._fail(f"no continuation finished in {resumes} resumes (--max-resumes)")

    def client_write_paused(self, paused: bool) -> None:
        upstream = self._upstream
        if upstream is not None:
            upstream.pause_reading() if paused else upstream.resume_reading()

    def first_byte_sent(self, replica: Replica) -> None:
        """The continuation reached the client: count the resume and the gap it left."""
        if self._waiting_since is None:
            return
        gap = self._loop.time() - self._waiting_since
        self._waiting_since = None
        self.app.counters.stream_resumed(gap)
        log_event(
            "info",
            "stream_resumed",
            target=self.origin.target.decode("latin-1"),
            broken_on=self._broken_on,
            continued_on=replica.url,
            events_before=self._events_at_break,
            gap_seconds=round(gap, 4),
        )

    def _note_break(self, replica: Replica, when: float) -> None:
        """A stream broke; the gap runs from the first break the client still waits on."""
        self._broken_on = replica.url
        self._events_at_break = self.tracker.events
        if self._waiting_since is None:
            self._waiting_since = when

    async def _attempt(self, replica: Replica, body: bytes) -> tuple[Outcome, str]:
        try:
            conn = await replica.pool.connect()
        except (OSError, TimeoutError) as exc:
            self.app.counters.error(ErrorKind.CONNECT_FAILED)
            self.app.replicas.eject(replica)
            return Outcome.UNANSWERED, f"{replica.url}: connect failed ({exc or type(exc)})"
        sink = _ContinuationSink(self, replica, conn)
        conn.begin(sink, head_request=False)
        self._upstream = conn
        if self.client.write_paused:
            conn.pause_reading()
        self.tracker.begin_continuation()
        conn.write(self._request_head(replica, len(body)) + body)
        timer = self._loop.call_later(self.app.config.response_timeout, sink.timed_out)
        try:
            outcome = await sink.outcome
        except asyncio.CancelledError:
            conn.abort()
            raise
        finally:
            timer.cancel()
            self._upstream = None
        replica.pool.release(conn, outcome is Outcome.COMPLETE and sink.keep_alive)
        return outcome, sink.detail

    def _request_head(self, replica: Replica, length: int) -> bytes:
        headers = [(n, v) for n, v in self.origin.headers if n.lower() not in _FRAMING]
        headers.append((b"Content-Length", b"%d" % length))
        head, _ = upstream_request_head(
            b"POST",
            self.origin.target,
            headers,
            replica.authority,
            self.origin.client_ip,
            proto=self.app.forwarded_proto,
        )
        return head

    def write(self, data: bytes) -> None:
        self.client.write(chunk(data) if self.origin.chunked else data)

    def _end(self) -> bool:
        if self.origin.chunked:
            self.client.write(LAST_CHUNK)
        return True

    def _fail(self, reason: str) -> bool:
        self.app.counters.stream_resume_failed()
        log_event(
            "warning",
            "stream_resume_failed",
            target=self.origin.target.decode("latin-1"),
            broken_on=self._broken_on,
            events_before=self.tracker.events,
            reason=reason,
        )
        message = f"the stream broke off and was not resumed: {reason}"
        error = {"error": {"message": message, "type": "stream_resume_failed"}}
        self.write(b"data: " + json.dumps(error).encode() + b"\n\n")
        self._end()
        return False


class _ContinuationSink:
    """``upstream.ResponseSink`` of one continuation: checks its head, forwards its events."""

    def __init__(self, splice: StreamSplice, replica: Replica, conn: UpstreamConnection) -> None:
        self.splice = splice
        self.replica = replica
        self.conn = conn
        self.outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.detail = ""
        self.keep_alive = False
        self._head = False
        self._out: list[bytes] = []
        self._meter = UsageMeter()
        """The continuation's own usage (its prompt holds what the broken replica sent)."""

    def _settle(self, outcome: Outcome, detail: str = "") -> None:
        if not self.outcome.done():
            self.detail = detail
            self.outcome.set_result(outcome)

    def response_head(self, status: int, reason: bytes, headers: Headers, keep_alive: bool) -> None:
        self._head = True
        self.keep_alive = keep_alive
        if status != 200 or not is_event_stream(headers):
            kind = next((v for n, v in headers if n.lower() == b"content-type"), b"no type")
            what = f"answered {status} ({kind.decode('latin-1')}), not an event stream"
            self._settle(Outcome.REFUSED, f"the continuation on {self.replica.url} {what}")
            self.conn.abort()
            return
        self._meter.start(status, headers)

    def response_body(self, data: bytes) -> None:
        if self.outcome.done():
            return
        self._meter.feed(data)
        events = self.splice.tracker.feed(data)
        if events:
            self._out.append(events)
            self.splice.first_byte_sent(self.replica)

    def response_complete(self) -> None:
        if self.splice.tracker.complete:
            if (tokens := self._meter.tokens()) is not None:
                self.splice.app.counters.tokens(self.replica.slot, *tokens)
            self._settle(Outcome.COMPLETE)
        else:
            self._settle(Outcome.BROKEN, f"{self.replica.url} ended the continuation early")

    def upstream_lost(self, exc: Exception | None) -> None:
        """The connection ended: before the head, after a close-delimited body, or midway."""
        self.keep_alive = False
        if self._head and self.splice.tracker.complete:
            self._settle(Outcome.COMPLETE)
        elif not self._head:
            detail = f"{self.replica.url} closed the connection before answering"
            self._settle(Outcome.UNANSWERED, detail)
        else:
            self._settle(Outcome.BROKEN, f"{self.replica.url} broke off the continuation")

    def timed_out(self) -> None:
        if not self._head:
            seconds = self.splice.app.config.response_timeout
            detail = f"{self.replica.url} sent no response head within {seconds:g}s"
            self._settle(Outcome.REFUSED, detail)
            self.conn.abort()

    def flush(self) -> None:
        if self._out:
            self.splice.write(b"".join(self._out))
            self._out.clear()

    def upstream_write_paused(self, paused: bool) -> None:
        pass

    def tunnel_data(self, data: bytes) -> None:
        pass
