"""A tiny OpenAI-compatible replica: `/health`, `/v1/models`, `/v1/chat/completions` and
`/v1/completions` (streamed as Server-Sent Events when `stream: true`).

It behaves like a greedy language model whose tokens are words with a trailing space: the
reply is a pure function of the request's context (never of the replica, whose id is only in
the `X-Replica-Id` header and `system_fingerprint`), so continuing from any token-boundary
prefix of a reply yields exactly the rest of it. Chat replies open with
`Hello! You said: <last user message>` and go on with 8-16 filler words picked by a hash of the
context so far; a chat request with `continue_final_message: true` (and
`add_generation_prompt: false`, as vLLM and SGLang take it) continues its final assistant
message. Completions append filler words to the prompt: the words a prompt already ends with
count as generated, so `prompt + partial` continues where `prompt` left off.

Standard library only, so it runs on any VM image or laptop with Python 3. The port comes
from `SERVE_REPLICA_PORT` (set by the controller), then `PORT`, then 8080;
`HELLO_TOKEN_DELAY` is the pause between streamed tokens in seconds (default 0.05).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLICA = os.environ.get("SERVE_REPLICA_ID", "0")
MODEL = os.environ.get("MODEL_NAME", "hello-1")
TOKEN_DELAY = float(os.environ.get("HELLO_TOKEN_DELAY", "0.05"))
FILLER = (
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
)
_VOCAB = frozenset(FILLER)
_TOKEN = re.compile(r"[^ ]* |[^ ]+$")


class BadRequest(ValueError):
    """The request cannot be answered; the message goes back in a 400."""


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _extra_words(context: str) -> int:
    return 8 + _hash("length:" + context) % 9


def _content(message: object) -> str:
    """Text of a message whose content is a string or a list of `{"type": "text"}` parts."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def chat_reply(messages: list[dict[str, object]], partial: str, limit: int | None):
    """(new tokens, finish_reason, prompt tokens) after the assistant text ``partial``."""
    context = json.dumps([[m.get("role"), _content(m)] for m in messages])
    last = next((_content(m) for m in reversed(messages) if m.get("role") == "user"), "")
    script = [w + " " for w in f"Hello! You said: {last}".strip().split(" ")]
    total = len(script) + _extra_words(context)
    done = count_tokens(partial)
    tokens: list[str] = []
    while done < total and (limit is None or len(tokens) < limit):
        if done < len(script):
            tokens.append(script[done])
        else:
            tokens.append(FILLER[_hash(context + partial + "".join(tokens)) % len(FILLER)] + " ")
        done += 1
    prompt_tokens = sum(count_tokens(_content(m)) for m in messages) + count_tokens(partial)
    return tokens, "stop" if done >= total else "length", prompt_tokens


def completion_reply(prompt: str, limit: int | None):
    """(new tokens, finish_reason, prompt tokens) for a text prompt; pure in ``prompt``."""
    words = prompt.split(" ")
    at_boundary = words[-1] == ""
    body = words[:-1] if at_boundary else words
    done = 0
    while at_boundary and done < len(body) and body[len(body) - 1 - done] in _VOCAB:
        done += 1
    total = _extra_words(" ".join(body[: len(body) - done]))
    text = prompt
    tokens: list[str] = []
    while done < total and (limit is None or len(tokens) < limit):
        word = FILLER[_hash(text) % len(FILLER)] + " "
        token = word if not text or text.endswith(" ") else " " + word
        tokens.append(token)
        text += token
        done += 1
    return tokens, "stop" if done >= total else "length", count_tokens(prompt)


def _limit(request: dict[str, object]) -> int | None:
    value = request.get("max_completion_tokens", request.get("max_tokens"))
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("max_tokens must be an integer >= 1")
    return value


def answer_chat(request: dict[str, object]):
    messages = request.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages must be a list of objects")
    partial = ""
    if request.get("continue_final_message"):
        if not messages or messages[-1].get("role") != "assistant":
            raise BadRequest("continue_final_message needs a final assistant message")
        if request.get("add_generation_prompt", True):
            raise BadRequest("continue_final_message needs add_generation_prompt: false")
        partial = _content(messages[-1])
        messages = messages[:-1]
    return chat_reply(messages, partial, _limit(request))


def answer_completion(request: dict[str, object]):
    prompt = request.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    return completion_reply(prompt, _limit(request))


ROUTES = {"/v1/chat/completions": answer_chat, "/v1/completions": answer_completion}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    total = prompt_tokens + completion_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hello-replica"

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"[replica {REPLICA}] {self.address_string()} {fmt % args}", flush=True)

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Replica-Id", REPLICA)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok", "replica": REPLICA})
        elif self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON"}})
            return
        answer = ROUTES.get(self.path.split("?", 1)[0])
        if answer is None or not isinstance(request, dict):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            tokens, finish, prompt_tokens = answer(request)
        except BadRequest as exc:
            self._json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            return
        reply = Reply(answer is answer_chat, tokens, finish, _usage(prompt_tokens, len(tokens)))
        if request.get("stream"):
            options = request.get("stream_options")
            self._stream(reply, isinstance(options, dict) and bool(options.get("include_usage")))
        else:
            self._json(200, reply.whole())

    def _stream(self, reply: Reply, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Replica-Id", REPLICA)
        self.end_headers()
        for event in reply.chunks(include_usage):
            self._chunk(f"data: {json.dumps(event)}\n\n")
            if event["choices"] and not event["choices"][0]["finish_reason"]:
                time.sleep(TOKEN_DELAY)
        self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class Reply:
    """One answer, shaped as OpenAI shapes chat and text completions, whole or in chunks."""

    def __init__(self, chat: bool, tokens: list[str], finish: str, usage: dict[str, int]):
        self.chat = chat
        self.tokens = tokens
        self.finish = finish
        self.usage = usage
        prefix = "chatcmpl" if chat else "cmpl"
        self.ident = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.created = int(time.time())

    def _envelope(self, kind: str, choices: list[dict[str, object]]) -> dict[str, object]:
        return {
            "id": self.ident,
            "object": kind,
            "created": self.created,
            "model": MODEL,
            "system_fingerprint": f"replica-{REPLICA}",
            "choices": choices,
        }

    def whole(self) -> dict[str, object]:
        text = "".join(self.tokens)
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
            kind = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None}
            kind = "text_completion"
        choice["finish_reason"] = self.finish
        return {**self._envelope(kind, [choice]), "usage": self.usage}

    def _piece(self, piece: dict[str, object] | str, finish: str | None) -> dict[str, object]:
        if self.chat:
            choice = {"index": 0, "delta": piece, "logprobs": None, "finish_reason": finish}
            return self._envelope("chat.completion.chunk", [choice])
        choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": finish}
        return self._envelope("text_completion", [choice])

    def chunks(self, include_usage: bool) -> list[dict[str, object]]:
        """As OpenAI streams: (chat) a role chunk, one chunk per token, a finish chunk, then
        with ``include_usage`` a usage chunk whose choices are empty."""
        events = [self._piece({"role": "assistant", "content": ""}, None)] if self.chat else []
        events += [self._piece({"content": t} if self.chat else t, None) for t in self.tokens]
        events.append(self._piece({} if self.chat else "", self.finish))
        if include_usage:
            events.append({**self._envelope(events[0]["object"], []), "usage": self.usage})
        return events


def main() -> None:
    port = int(os.environ.get("SERVE_REPLICA_PORT") or os.environ.get("PORT") or 8080)
    # SERVE_REPLICA_HOST: the address the cloud fakes' boot mode gives each instance.
    host = os.environ.get("SERVE_REPLICA_HOST") or "0.0.0.0"
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print(f"[replica {REPLICA}] serving {MODEL} on port {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
