"""What the load balancer follows while forwarding a resumable stream, and how it rewrites a
continuation's events so that the client sees one stream.

Pure: no I/O. Only whole events are handed out for forwarding (a partial one is held until its
blank line), so a stream cut by a dying replica leaves the client at an event boundary. While
the stream is forwarded the tracker keeps: the first ``id``, the text sent so far
(``choices[0].delta.content`` for chat, ``choices[0].text`` for completions), the number of
content events, and whether a ``finish_reason`` or ``[DONE]`` was seen. It stops being
resumable (``refused`` says why) on a tool or function call delta, a second choice, an error
event, data that is not JSON, or more than ``text_limit`` bytes of text or of one pending event.

A continuation's events are rewritten: the original ``id`` on each, its leading role-only
chunk dropped when the client already has one, and ``usage`` moved to the client's view (the
continuation counts the text already sent as prompt: those events go back to completion).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from load_balancer.sse import DONE, SseSplitter, event_data, with_data
from load_balancer.stream_resume import Kind

# raw_decode skips json.loads' encoding detection and its whitespace regexes (a third of the
# cost of a chunk); trailing bytes after the object are ignored.
_decode = json.JSONDecoder().raw_decode


@dataclass
class _Continuation:
    offset: int
    drop_role: bool


class StreamTracker:
    """Follows one streamed OpenAI response across the original replica and continuations."""

    def __init__(self, kind: Kind, text_limit: int) -> None:
        self.kind = kind
        self.text_limit = text_limit
        self.first_id: str | None = None
        self.events = 0
        self.finished = False
        self.done = False
        self.refused = ""
        self._parts: list[str] = []
        self._text_bytes = 0
        self._role_sent = False
        self._splitter = SseSplitter()
        self._continuation: _Continuation | None = None

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def complete(self) -> bool:
        """The replica said the answer is over (``finish_reason`` or ``[DONE]``)."""
        return self.done or self.finished

    @property
    def needs_resume(self) -> bool:
        """True while a break would leave the client with an unfinished, resumable answer."""
        return not self.refused and not self.complete

    def feed(self, data: bytes) -> bytes:
        """The whole events ``data`` completes, ready to forward (rewritten in a continuation)."""
        events = self._splitter.feed(data)
        if self._splitter.pending_size > self.text_limit:
            self._refuse(f"an event over {self.text_limit} bytes (--resume-text-bytes)")
        if self._continuation is not None:
            return b"".join(self._rewrite(event) for event in events)
        if not self.refused:
            for event in events:
                self._observe(self._parse(event))
        return events[0] if len(events) == 1 else b"".join(events)

    def take_pending(self) -> bytes:
        """The unfinished event held back, for a caller that forwards it after all."""
        return self._splitter.take_pending()

    def begin_continuation(self) -> None:
        """The next bytes fed are a continuation's stream (a fresh one on every call)."""
        self._splitter = SseSplitter()
        drop_role = self.kind is Kind.CHAT and self._role_sent
        self._continuation = _Continuation(offset=self.events, drop_role=drop_role)

    def _parse(self, event: bytes) -> dict[str, Any] | None:
        """The event's JSON object; None for [DONE] and events without data."""
        data = event_data(event)
        if data is None:
            return None
        if data == DONE:
            self.done = True
            return None
        try:
            parsed = _decode(data.decode().strip())[0]
        except ValueError:  # UnicodeDecodeError is one
            parsed = None
        if not isinstance(parsed, dict):
            self._refuse("an event whose data is not a JSON object")
            return None
        return parsed

    def _observe(self, chunk: dict[str, Any] | None) -> None:
        if chunk is None or self.refused:
            return
        if "error" in chunk or chunk.get("object") == "error":
            self._refuse("the replica sent an error event")
            return
        if self.first_id is None and isinstance(chunk.get("id"), str):
            self.first_id = chunk["id"]
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices:
            self._observe_choices(choices)

    def _observe_choices(self, choices: list[Any]) -> None:
        choice = choices[0]
        if len(choices) > 1 or not isinstance(choice, dict) or choice.get("index", 0) != 0:
            self._refuse("more than one choice")
            return
        if self.kind is Kind.CHAT:
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            if delta.get("tool_calls") or delta.get("function_call"):
                self._refuse("a tool call")
                return
            self._role_sent = self._role_sent or bool(delta.get("role"))
            piece = delta.get("content")
        else:
            piece = choice.get("text")
        if isinstance(piece, str) and piece:
            self._add_text(piece)
        if choice.get("finish_reason"):
            self.finished = True

    def _add_text(self, piece: str) -> None:
        self.events += 1
        self._text_bytes += len(piece.encode())
        if self._text_bytes > self.text_limit:
            self._refuse(f"more than {self.text_limit} bytes of text (--resume-text-bytes)")
        else:
            self._parts.append(piece)

    def _refuse(self, why: str) -> None:
        if not self.refused:
            self.refused = why
            self._parts.clear()

    def _rewrite(self, event: bytes) -> bytes:
        chunk = self._parse(event)
        self._observe(chunk)
        continuation = self._continuation
        if chunk is None or continuation is None:
            return event
        if continuation.drop_role:
            if _role_only(chunk):
                return b""
            continuation.drop_role = False
        changed = False
        if self.first_id is not None and chunk.get("id") != self.first_id and "id" in chunk:
            chunk["id"] = self.first_id
            changed = True
        usage = chunk.get("usage")
        if continuation.offset and isinstance(usage, dict):
            chunk["usage"] = _client_usage(usage, continuation.offset)
            changed = True
        if not changed:
            return event
        return with_data(event, json.dumps(chunk, ensure_ascii=False).encode())


def _role_only(chunk: dict[str, Any]) -> bool:
    """A chat chunk that only announces the assistant role (OpenAI's and vLLM's first)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return False
    choice = choices[0]
    delta = choice.get("delta")
    if choice.get("finish_reason") or chunk.get("usage") or not isinstance(delta, dict):
        return False
    return bool(delta.get("role")) and not any(v for k, v in delta.items() if k != "role")


def _client_usage(usage: dict[str, Any], offset: int) -> dict[str, Any]:
    adjusted = dict(usage)
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        adjusted["prompt_tokens"] = max(prompt - offset, 0)
        adjusted["completion_tokens"] = completion + offset
    return adjusted
