"""A tiny OpenAI-compatible replica: `/health`, `/v1/models` and `/v1/chat/completions`
(streamed as Server-Sent Events when `stream: true`).

Standard library only, so it runs on any VM image or laptop with Python 3. The port comes
from `SERVE_REPLICA_PORT` (set by the controller), then `PORT`, then 8080.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLICA = os.environ.get("SERVE_REPLICA_ID", "0")
MODEL = os.environ.get("MODEL_NAME", "hello-1")
TOKEN_DELAY = float(os.environ.get("HELLO_TOKEN_DELAY", "0.05"))


def reply_words(messages: list[dict[str, str]]) -> list[str]:
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    text = f"Hello from replica {REPLICA}! You said: {last}".strip()
    return [w + " " for w in text.split(" ")]


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
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        words = reply_words(request.get("messages") or [])
        if request.get("stream"):
            self._stream(words)
        else:
            self._json(200, completion("".join(words).strip()))

    def _stream(self, words: list[str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Replica-Id", REPLICA)
        self.end_headers()
        ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        for word in words:
            self._chunk(f"data: {json.dumps(delta(ident, word))}\n\n")
            time.sleep(TOKEN_DELAY)
        self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def completion(text: str) -> dict[str, object]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "system_fingerprint": f"replica-{REPLICA}",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }


def delta(ident: str, word: str) -> dict[str, object]:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "system_fingerprint": f"replica-{REPLICA}",
        "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
    }


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
