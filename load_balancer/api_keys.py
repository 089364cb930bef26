"""The service's API keys as the load balancer holds them: SHA-256 hashes, never values.

With no hashes the endpoint is open. With some, a proxied request must carry
``Authorization: Bearer <key>`` whose SHA-256 is one of them; anything else (no header,
another scheme, an empty or repeated header, bytes that are not text) is a ``Refusal`` to be
answered 401, never an exception. The presented key's hash is compared with every stored
hash with ``hmac.compare_digest`` and no early exit, so the time taken depends on neither
which key matched nor how much of a hash did. The controller keeps the keys per service
few (``MAX_KEYS``), so this costs microseconds.

The key is the load balancer's credential, not the replica's: ``strip`` removes it from the
headers forwarded, so it never reaches a replica or its logs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from load_balancer.http_head import Headers

MAX_KEYS = 1000
"""Most hashes a sync may carry (the controller allows far fewer per service)."""


@dataclass(frozen=True)
class KeyRefusal:
    """Why a request is refused 401; ``detail`` never repeats what the client sent."""

    detail: str


_MISSING = KeyRefusal("this endpoint needs an API key: send 'Authorization: Bearer <key>'")
_MALFORMED = KeyRefusal("the Authorization header is not 'Bearer <key>'")
_REPEATED = KeyRefusal("send one Authorization header, not several")
_UNKNOWN = KeyRefusal("the API key is not valid for this service (unknown or revoked)")


class ApiKeys:
    """The current hashes of one worker; replaced whole by each sync that carries them."""

    def __init__(self) -> None:
        self._hashes: tuple[bytes, ...] = ()

    def replace(self, hashes: Iterable[str]) -> None:
        self._hashes = tuple(sorted({h.encode("ascii") for h in hashes}))

    def __len__(self) -> int:
        return len(self._hashes)

    @property
    def required(self) -> bool:
        return bool(self._hashes)

    def check(self, headers: Headers) -> KeyRefusal | None:
        """None if the request may pass, else why not."""
        if not self._hashes:
            return None
        values = [v for n, v in headers if n.lower() == b"authorization"]
        if not values:
            return _MISSING
        if len(values) > 1:
            return _REPEATED
        scheme, _, key = values[0].strip().partition(b" ")
        key = key.strip(b" \t")
        if scheme.lower() != b"bearer" or not key:
            return _MALFORMED
        return None if self._matches(key) else _UNKNOWN

    def _matches(self, key: bytes) -> bool:
        digest = hashlib.sha256(key).hexdigest().encode("ascii")
        found = False
        for stored in self._hashes:
            found |= hmac.compare_digest(digest, stored)
        return found


def strip(headers: Headers) -> Headers:
    """The headers without ``Authorization`` (once the load balancer has checked it)."""
    return [(n, v) for n, v in headers if n.lower() != b"authorization"]
