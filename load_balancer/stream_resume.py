"""Which streamed OpenAI requests can be resumed, and the continuation request to send.

Pure: no I/O. A request is resumable when it is a ``POST`` to ``/v1/chat/completions`` or
``/v1/completions`` (path without query) with a JSON object body that has ``"stream": true``,
``n`` absent or 1, and (completions) a string ``prompt`` without ``echo``. Its continuation,
after the client received ``text`` in ``events`` content events, is the same body with:

- chat: the messages plus ``{"role": "assistant", "content": text}`` (or ``text`` appended to
  a final assistant message the client itself asked to continue), ``continue_final_message:
  true`` and ``add_generation_prompt: false``, as vLLM and SGLang take them;
- completions: ``prompt + text``;
- ``max_tokens`` and ``max_completion_tokens`` lowered by ``events`` (one event is about one
  token); when that leaves nothing to generate there is no continuation.

A stream that broke before any text is sent again unchanged.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from load_balancer.http_head import Headers


class Kind(enum.Enum):
    CHAT = "chat"
    COMPLETIONS = "completions"


_PATHS = {b"/v1/chat/completions": Kind.CHAT, b"/v1/completions": Kind.COMPLETIONS}
_TOKEN_LIMITS = ("max_tokens", "max_completion_tokens")


def resumable_kind(method: bytes, target: bytes) -> Kind | None:
    """Cheap test on the request line: may this request's stream be resumed at all?"""
    if method != b"POST":
        return None
    return _PATHS.get(target.split(b"?", 1)[0])


def is_event_stream(headers: Headers) -> bool:
    """A ``text/event-stream`` body without a content coding (so its events can be read)."""
    event_stream = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-type":
            event_stream = value.split(b";", 1)[0].strip().lower() == b"text/event-stream"
        elif lowered == b"content-encoding" and value.strip().lower() != b"identity":
            return False
    return event_stream


@dataclass(frozen=True)
class ResumableRequest:
    """A streamed OpenAI request body the load balancer knows how to continue."""

    kind: Kind
    body: dict[str, Any]

    @classmethod
    def parse(cls, kind: Kind, raw: bytes) -> ResumableRequest | None:
        """The request, or None when its stream cannot be resumed safely."""
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(body, dict) or body.get("stream") is not True:
            return None
        if body.get("n", 1) not in (None, 1):
            return None
        if kind is Kind.COMPLETIONS:
            ok = isinstance(body.get("prompt"), str) and not body.get("echo")
        else:
            ok = _continuable_messages(body)
        return cls(kind, body) if ok else None


def _continuable_messages(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    if not body.get("continue_final_message"):
        return True
    last = messages[-1]
    return isinstance(last, dict) and last.get("role") == "assistant" and _text_content(last)


def _text_content(message: dict[str, Any]) -> bool:
    return isinstance(message.get("content"), str)


def continuation_body(request: ResumableRequest, text: str, events: int) -> bytes | None:
    """The body that asks another replica for the rest, or None when the token budget is
    spent (the stream is then complete as far as the client asked)."""
    body = dict(request.body)
    for key in _TOKEN_LIMITS:
        limit = body.get(key)
        if isinstance(limit, int) and not isinstance(limit, bool):
            if limit - events < 1:
                return None
            body[key] = limit - events
    if text:
        if request.kind is Kind.COMPLETIONS:
            body["prompt"] = body["prompt"] + text
        else:
            body["messages"] = _with_partial(body, text)
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
    return json.dumps(body, ensure_ascii=False).encode()


def _with_partial(body: dict[str, Any], text: str) -> list[Any]:
    messages = list(body["messages"])
    if body.get("continue_final_message"):
        last = dict(messages[-1])
        last["content"] = last["content"] + text
        messages[-1] = last
    else:
        messages.append({"role": "assistant", "content": text})
    return messages
