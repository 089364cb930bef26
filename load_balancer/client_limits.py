"""What a worker refuses to do for a client, and the answer the client gets instead.

A client may be slow or hostile; these limits keep one from holding a worker's memory or
connection slots (the flags are per worker process):

- the request head (request line and headers) must arrive within ``--request-head-timeout``
  of its first byte: 408 ``request_timeout``;
- it may not exceed ``--max-head-bytes`` or ``MAX_HEADER_FIELDS`` fields: 431
  ``request_header_fields_too_large``;
- a worker holds at most ``--max-connections`` client connections; one more is shed with 503
  ``too_many_connections`` and ``Retry-After: 1`` before a byte of it is read.

Every refusal closes the connection: the rest of what the client sent is never read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from load_balancer.http_head import json_response
from load_balancer.telemetry import ErrorKind

# Apache's LimitRequestFields default; well above what browsers and HTTP clients send.
MAX_HEADER_FIELDS = 100


@dataclass(frozen=True)
class Refusal:
    """A client-level answer of the load balancer's own; ``error`` is also the metric kind."""

    status: int
    error: ErrorKind
    detail: str
    retry_after: int | None = None

    def response(self) -> bytes:
        body = json.dumps({"error": self.error, "detail": self.detail}).encode()
        return json_response(self.status, body, keep_alive=False, retry_after=self.retry_after)


class HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head the load balancer will not read."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


def head_timeout(seconds: float) -> Refusal:
    detail = f"the request head did not arrive within {seconds:g}s (--request-head-timeout)"
    return Refusal(408, ErrorKind.REQUEST_TIMEOUT, detail)


def head_too_large(max_bytes: int) -> Refusal:
    detail = f"the request line and headers exceed {max_bytes} bytes (--max-head-bytes)"
    return Refusal(431, ErrorKind.REQUEST_HEADER_FIELDS_TOO_LARGE, detail)


def too_many_header_fields() -> Refusal:
    detail = f"the request has more than {MAX_HEADER_FIELDS} header fields"
    return Refusal(431, ErrorKind.REQUEST_HEADER_FIELDS_TOO_LARGE, detail)


def too_many_connections(max_connections: int) -> Refusal:
    detail = (
        f"this load balancer worker already holds {max_connections} client connections "
        "(--max-connections); retry shortly"
    )
    return Refusal(503, ErrorKind.TOO_MANY_CONNECTIONS, detail, retry_after=1)


class HeadBudget:
    """Counts the bytes of the request head being read so the parser never gets more.

    httptools keeps a header name or value that has not ended yet in memory, however many
    reads it spans, so a head without an end would grow the process without bound. Bytes are
    counted before they are fed, and ``split`` hands the parser at most what is left of the
    budget. Invariant: a head that starts at a read boundary reaches the parser with at most
    ``max_bytes`` bytes. Slack: the parser does not say where in a read one request ends, so
    a pipelined head that starts inside the read that ends the previous request is counted
    from the next read on; it may exceed the budget by the rest of that one read (uvloop and
    asyncio read at most 256 KiB at a time).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._used: int | None = 0

    def split(self, data: bytes) -> tuple[bytes, bytes]:
        """Return (what to feed now, what to keep for after that); counts the first part."""
        if self._used is None:
            return data, b""
        room = self.max_bytes - self._used
        piece = data[:room] if len(data) > room else data
        self._used += len(piece)
        return piece, data[len(piece) :]

    @property
    def exhausted(self) -> bool:
        """True when a head is still being read and its budget is spent."""
        return self._used is not None and self._used >= self.max_bytes

    def head_complete(self) -> None:
        self._used = None

    def message_complete(self) -> None:
        self._used = 0
