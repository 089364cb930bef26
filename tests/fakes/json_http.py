"""A small JSON-over-HTTP server base for cloud API fakes.

A fake subclasses `JsonHTTPFake`, lists `(method, path regex, handler)` routes and keeps its
state in memory. The server is a real `ThreadingHTTPServer` on 127.0.0.1 with an ephemeral
port, so the real SDK clients talk real HTTP to it. Handlers run under one lock: the fake's
state changes atomically per request.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[re.Match[str], Request], Reply]


class LoopbackServer:
    """A threading HTTP server on 127.0.0.1 (port 0: any free one), run in a daemon thread;
    the one lifecycle every fake in this folder shares."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class JsonHTTPFake:
    """Base for in-memory API fakes; `requests` records everything received, in order."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.RLock()
        self._http: LoopbackServer | None = None
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    @property
    def url(self) -> str:
        assert self._http is not None, "call start() first"
        return self._http.url

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern), handler))

    def start(self, port: int = 0) -> str:
        self._http = LoopbackServer(_handler_class(self), port)
        return self._http.start()

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    def dispatch(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(request)
            for method, pattern, handler in self._routes:
                match = pattern.fullmatch(request.path)
                if match and method == request.method:
                    return handler(match, request)
            return self.unknown_route(request)

    def unknown_route(self, request: Request) -> Reply:
        return Reply(404, {"error": {"code": 404, "message": f"no route {request.path}"}})


def _handler_class(fake: JsonHTTPFake) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw.strip() else None,
            )
            reply = fake.dispatch(request)
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return _Handler


def serve_until_interrupted(fake: JsonHTTPFake, argv: list[str] | None = None) -> None:
    """`python -m tests.fakes.<fake> [PORT]`: serve on 127.0.0.1 until Ctrl-C."""
    import sys
    import time

    args = sys.argv[1:] if argv is None else argv
    print(fake.start(int(args[0]) if args else 0), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
