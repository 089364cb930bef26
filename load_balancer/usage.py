"""Token usage read off OpenAI-compatible answers, for tokens/s and $ per million tokens.

Only a ``POST`` to an OpenAI path is metered; every other request costs nothing. A meter keeps
the last ``TAIL_BYTES`` of the answer (memory per request stays bounded whatever its size) and
reads ``usage`` once, when the answer is complete:

- a JSON body (``application/json``) carries ``usage`` at its top level; servers put it last
  (OpenAI, vLLM, TGI, SGLang), so a body longer than the tail is read from its last
  ``"usage"`` key;
- a stream (``text/event-stream``) carries it in a final chunk when the client asked for
  ``stream_options.include_usage`` (some servers put running totals in every chunk: the last
  one wins, so nothing is counted twice).

An answer with a ``Content-Encoding`` is not read (we never decompress), nor is one whose
figures are not plausible token counts: a broken replica must not inflate the bill.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from load_balancer.http_head import Headers

METERED_PATHS = frozenset({b"/v1/chat/completions", b"/v1/completions", b"/v1/embeddings"})
TAIL_BYTES = 16 * 1024
MAX_TOKENS_PER_ANSWER = 100_000_000
"""Above any context window we know of: a larger figure is a bug, not usage."""
_SEARCHES = 4


class UsageMeter:
    """The tail of one answer and, once it is complete, its (prompt, completion) tokens."""

    __slots__ = ("_held", "_stream", "_whole")

    def __init__(self) -> None:
        self._held = bytearray()
        self._stream = False
        self._whole = True

    @classmethod
    def for_request(cls, method: bytes, target: bytes) -> UsageMeter | None:
        if method != b"POST":
            return None
        # Origin form (what clients send) without urlsplit: this runs for every POST.
        path = target.partition(b"?")[0] if target[:1] == b"/" else urlsplit(target).path
        path = path.rstrip(b"/")
        return cls() if path in METERED_PATHS else None

    def start(self, status: int, headers: Headers) -> bool:
        """At the response head: False when this answer will not say what it used."""
        if status != 200:
            return False
        kind = b""
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-encoding" and value.strip().lower() != b"identity":
                return False
            if lowered == b"content-type":
                kind = value.split(b";", 1)[0].strip().lower()
        self._stream = kind == b"text/event-stream"
        self._held.clear()
        self._whole = True
        return self._stream or kind == b"application/json"

    def feed(self, data: bytes) -> None:
        held = self._held
        held += data
        if len(held) > 2 * TAIL_BYTES:
            del held[: len(held) - TAIL_BYTES]
            self._whole = False

    def tokens(self) -> tuple[int, int] | None:
        """(prompt, completion) of the complete answer; None when it said nothing usable."""
        held = bytes(self._held)
        if self._stream:
            usage = _last_stream_usage(held)
        elif self._whole:
            usage = _body_usage(held)
        else:
            usage = _last_usage_object(held)
        return _counts(usage)


def _body_usage(body: bytes) -> object:
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return answer.get("usage") if isinstance(answer, dict) else None


def _last_stream_usage(tail: bytes) -> object:
    """The usage of the last event that has one (events are separated by a blank line)."""
    events = tail.replace(b"\r\n", b"\n").split(b"\n\n")
    for event in reversed(events):
        for line in event.split(b"\n"):
            if not line.startswith(b"data:") or b'"usage"' not in line:
                continue
            try:
                chunk = json.loads(line[5:])
            except (ValueError, UnicodeDecodeError):
                continue
            usage = chunk.get("usage") if isinstance(chunk, dict) else None
            if isinstance(usage, dict):
                return usage
    return None


def _last_usage_object(tail: bytes) -> object:
    """The object after the last ``"usage":`` that parses (a body larger than the tail)."""
    text = tail.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    end = len(text)
    for _ in range(_SEARCHES):
        at = text.rfind('"usage"', 0, end)
        if at < 0:
            return None
        end = at
        rest = text[at + len('"usage"') :].lstrip()
        if not rest.startswith(":"):
            continue
        try:
            value, _ = decoder.raw_decode(rest[1:].lstrip())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _counts(usage: object) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    for value in (prompt, completion):
        if type(value) is not int or not 0 <= value <= MAX_TOKENS_PER_ANSWER:
            return None
    assert isinstance(prompt, int) and isinstance(completion, int)
    return prompt, completion
