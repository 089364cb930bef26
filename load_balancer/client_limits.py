"""What a worker refuses to do for a client, and the answer the client gets instead.

A client may be slow or hostile; these limits keep one from holding a worker's memory or
connection slots (the flags are per worker process):

- the request head (request line and headers) must arrive within ``--request-head-timeout``
  of its first byte: 408 ``request_timeout``.

Every refusal closes the connection: the rest of what the client sent is never read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from load_balancer.http_head import json_response


@dataclass(frozen=True)
class Refusal:
    """A client-level answer of the load balancer's own; ``error`` is also the metric kind."""

    status: int
    error: str
    detail: str

    def response(self) -> bytes:
        body = json.dumps({"error": self.error, "detail": self.detail}).encode()
        return json_response(self.status, body, keep_alive=False)


def head_timeout(seconds: float) -> Refusal:
    detail = f"the request head did not arrive within {seconds:g}s (--request-head-timeout)"
    return Refusal(408, "request_timeout", detail)
