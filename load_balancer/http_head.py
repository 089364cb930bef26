"""Building the request head sent to a replica and the response head sent to the client.

Header hygiene (RFC 9110 section 7.6.1): hop-by-hop headers and every header named in
``Connection`` are dropped in both directions; message framing is re-derived because bodies
are re-framed (chunked bodies arrive de-chunked from the parser). ``Host`` is set to the
replica's authority, as nginx and SkyServe do, and the client's ``Host`` travels as
``X-Forwarded-Host``. An existing ``X-Forwarded-For`` is appended to; existing
``X-Forwarded-Proto``/``-Host`` (set by a TLS terminator in front of us) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_REQUEST_DROPPED = HOP_BY_HOP | {b"host", b"expect", b"content-length", b"x-forwarded-for"}
_RESPONSE_DROPPED = HOP_BY_HOP | {b"content-length"}
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


@dataclass(frozen=True)
class Framing:
    """How a message body is delimited on the wire."""

    content_length: bytes | None
    chunked: bool


def reason_phrase(status: int) -> bytes:
    return _REASONS.get(status, b"Unknown")


def _connection_tokens(headers: Headers) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens


def framing_of(headers: Headers) -> Framing:
    """Content-Length / chunked as the parser will honour them (chunked wins, RFC 9112 6.3)."""
    length: bytes | None = None
    chunked = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            length = value.strip()
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return Framing(None if chunked else length, chunked)


def wants_upgrade(headers: Headers) -> bool:
    return any(name.lower() == b"upgrade" for name, _ in headers)


def wants_websocket(headers: Headers) -> bool:
    return any(n.lower() == b"upgrade" and v.lower() == b"websocket" for n, v in headers)


def expects_continue(headers: Headers) -> bool:
    return any(n.lower() == b"expect" and v.lower() == b"100-continue" for n, v in headers)


def upstream_request_head(
    method: bytes,
    target: bytes,
    headers: Headers,
    replica_authority: bytes,
    client_ip: bytes,
    upgrade: bool = False,
    proto: bytes = b"http",
) -> tuple[bytes, bool]:
    """Return the head bytes for the replica and whether the body must be sent chunked.

    ``proto`` is the client's scheme for ``X-Forwarded-Proto`` (https when we terminate TLS).

    With ``upgrade`` (a WebSocket handshake) the ``Upgrade`` header is kept and
    ``Connection: Upgrade`` re-added, so the replica can switch protocols.
    """
    dropped = _REQUEST_DROPPED | _connection_tokens(headers)
    lines = [b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, replica_authority)]
    if upgrade:
        dropped = dropped - {b"upgrade"}
        lines.append(b"Connection: Upgrade\r\n")
    forwarded_for: list[bytes] = []
    have_proto = have_host = False
    client_host = b""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"host":
            client_host = value
        elif lowered == b"x-forwarded-for":
            forwarded_for.append(value)
        elif lowered == b"x-forwarded-proto":
            have_proto = True
        elif lowered == b"x-forwarded-host":
            have_host = True
        if lowered not in dropped:
            lines.append(b"%s: %s\r\n" % (name, value))
    forwarded_for.append(client_ip)
    lines.append(b"X-Forwarded-For: %s\r\n" % b", ".join(forwarded_for))
    if not have_proto:
        lines.append(b"X-Forwarded-Proto: %s\r\n" % proto)
    if not have_host and client_host:
        lines.append(b"X-Forwarded-Host: %s\r\n" % client_host)
    framing = framing_of(headers)
    if framing.chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    elif framing.content_length is not None:
        lines.append(b"Content-Length: %s\r\n" % framing.content_length)
    lines.append(b"\r\n")
    return b"".join(lines), framing.chunked


def client_response_head(
    status: int,
    reason: bytes,
    headers: Headers,
    body_allowed: bool,
    client_keep_alive: bool,
    client_http11: bool,
) -> tuple[bytes, bool, bool]:
    """Return (head bytes, re-chunk the body?, keep the client connection open?).

    A body without a length is chunked to HTTP/1.1 clients and close-delimited to HTTP/1.0
    ones; ``body_allowed`` is false for HEAD requests and 204/304 answers, whose
    Content-Length describes a body that is never sent.
    """
    dropped = _RESPONSE_DROPPED | _connection_tokens(headers)
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason or reason_phrase(status))]
    if status == 101:
        dropped = dropped - {b"upgrade"}
        lines.append(b"Connection: Upgrade\r\n")
    lines.extend(b"%s: %s\r\n" % (n, v) for n, v in headers if n.lower() not in dropped)
    if status == 101:
        lines.append(b"\r\n")
        return b"".join(lines), False, False
    framing = framing_of(headers)
    chunk_body = False
    keep_alive = client_keep_alive
    if framing.content_length is not None and not framing.chunked:
        lines.append(b"Content-Length: %s\r\n" % framing.content_length)
    elif body_allowed and client_http11:
        lines.append(b"Transfer-Encoding: chunked\r\n")
        chunk_body = True
    elif body_allowed:
        keep_alive = False
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), chunk_body, keep_alive


def json_response(
    status: int,
    body: bytes,
    keep_alive: bool,
    content_type: bytes = b"",
    retry_after: int | None = None,
    extra_headers: bytes = b"",
) -> bytes:
    """A complete response generated by the load balancer itself (``extra_headers`` are
    whole header lines, each ending in CRLF)."""
    kind = content_type or b"application/json"
    extra = extra_headers if keep_alive else extra_headers + b"Connection: close\r\n"
    if retry_after is not None:
        extra += b"Retry-After: %d\r\n" % retry_after
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status,
        reason_phrase(status),
        kind,
        len(body),
        extra,
        body,
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
