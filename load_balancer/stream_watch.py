"""The resume side of one proxied request, so ``ProxyRequest`` only calls it at its hooks.

A watch exists only while resume is on and the request line is a ``POST`` to an OpenAI
streaming path; every other request is proxied without one. It keeps the request body (while
it fits the replay buffer), decides at the response head whether the answer is a stream it
can resume (the body complete and resumable, the answer 200 ``text/event-stream``), then hands
out whole events for forwarding and, after a break, continues the stream on other replicas.
Once the stream can no longer be resumed the caller drops the watch and forwards raw bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from load_balancer.balancing import Replica
from load_balancer.http_head import Headers
from load_balancer.stream_resume import Kind, ResumableRequest, is_event_stream, resumable_kind
from load_balancer.stream_splice import Origin, StreamSplice
from load_balancer.stream_tracker import StreamTracker

if TYPE_CHECKING:
    from load_balancer.client_connection import ClientConnection
    from load_balancer.proxy_app import ProxyApp


class StreamWatch:
    """Body kept for a continuation, the tracker of the answer, and the splice after a break."""

    def __init__(self, app: ProxyApp, kind: Kind) -> None:
        self.app = app
        self.kind = kind
        self.broke_at: float | None = None
        self._body: bytearray | None = bytearray()
        self._request: ResumableRequest | None = None
        self._tracker: StreamTracker | None = None
        self._splice: StreamSplice | None = None

    @classmethod
    def for_request(cls, app: ProxyApp, method: bytes, target: bytes) -> StreamWatch | None:
        kind = resumable_kind(method, target) if app.resume_streams else None
        return cls(app, kind) if kind is not None else None

    def body_received(self, data: bytes) -> None:
        if self._body is not None:
            self._body += data
            if len(self._body) > self.app.config.replay_buffer_bytes:
                self._body = None

    def track(self, status: int, headers: Headers, body_done: bool) -> bool:
        """Start following the answer; False when it is not a stream this watch can resume."""
        raw, self._body = self._body, None
        if raw is None or not body_done or status != 200 or not is_event_stream(headers):
            return False
        self._request = ResumableRequest.parse(self.kind, bytes(raw))
        if self._request is None:
            return False
        self._tracker = StreamTracker(self.kind, self.app.config.resume_text_bytes)
        return True

    @property
    def tracking(self) -> bool:
        return self._tracker is not None and not self._tracker.refused

    @property
    def needs_resume(self) -> bool:
        return self._tracker is not None and self._tracker.needs_resume

    def forward(self, data: bytes) -> bytes:
        """What of ``data`` to send the client now: whole events, or everything held once the
        stream stopped being resumable (``tracking`` is then False)."""
        tracker = self._tracker
        if tracker is None:
            return data
        out = tracker.feed(data)
        return out + tracker.take_pending() if tracker.refused else out

    def tail(self) -> bytes:
        """At the clean end of a complete stream: the unterminated last bytes, if any."""
        return self._tracker.take_pending() if self._tracker is not None else b""

    async def continue_stream(
        self, client: ClientConnection, origin: Origin, broken: Replica
    ) -> bool:
        """Finish the client's stream on other replicas; True when it ended well."""
        assert self._request is not None and self._tracker is not None
        assert self.broke_at is not None
        self._splice = StreamSplice(self.app, client, origin, self._request, self._tracker)
        return await self._splice.run(broken, self.broke_at)

    def client_write_paused(self, paused: bool) -> None:
        if self._splice is not None:
            self._splice.client_write_paused(paused)
