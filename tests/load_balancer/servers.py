"""Real servers the load balancer tests talk to.

Run as a process: ``python tests/load_balancer/servers.py backend --port P --name A`` (an
ASGI replica on uvicorn with programmable behaviours) or ``... closer --port P`` (a replica
that accepts, reads the request and closes without answering). ``FakeController`` is an
in-test HTTP server speaking the controller's lb-sync contract.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]


class BackendApp:
    """Replica behaviours keyed by path; state is inspected through ``GET /stats``.

    ``/hold`` and ``/sse`` wait on ``POST /release`` so tests observe order, never timing;
    ``/v1/chat/completions`` answers 500, as a replica whose engine failed does.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits: Counter[str] = Counter()
        self.in_progress = 0
        self.disconnected = 0
        self.upload_bytes_seen = 0
        self.download_bytes_sent = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await self._websocket_echo(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.hits[path] += 1
        handler = {
            "/stats": self._stats,
            "/release": self._release,
            "/hold": self._hold,
            "/sse": self._sse,
            "/upload": self._upload,
            "/break-after-start": self._break_after_start,
            "/download": self._download,
            "/v1/chat/completions": self._engine_error,
        }.get(path, self._echo)
        await handler(scope, receive, send)

    async def _websocket_echo(self, receive: Any, send: Any) -> None:
        """Accept, then answer each text message with ``<name> echo: <text>``."""
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif message["type"] == "websocket.receive":
                text = f"{self.name} echo: {message.get('text')}"
                await send({"type": "websocket.send", "text": text})
            else:
                return

    async def _json(self, send: Any, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _read_body(self, receive: Any) -> int:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                return size

    async def _echo(self, scope: Scope, receive: Any, send: Any) -> None:
        size = await self._read_body(receive)
        headers = [[k.decode(), v.decode()] for k, v in scope["headers"]]
        body = {
            "replica": self.name,
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "headers": headers,
            "body_bytes": size,
        }
        await self._json(send, body)

    async def _engine_error(self, scope: Scope, receive: Any, send: Any) -> None:
        await self._read_body(receive)
        error = {"message": f"{self.name}: engine failed (programmed)", "type": "server_error"}
        await self._json(send, {"error": error}, status=500)

    async def _stats(self, scope: Scope, receive: Any, send: Any) -> None:
        body = {
            "name": self.name,
            "hits": dict(self.hits),
            "in_progress": self.in_progress,
            "disconnected": self.disconnected,
            "upload_bytes_seen": self.upload_bytes_seen,
            "download_bytes_sent": self.download_bytes_sent,
        }
        await self._json(send, body)

    async def _release(self, scope: Scope, receive: Any, send: Any) -> None:
        self.release.set()
        await self._json(send, {"released": True})

    async def _hold(self, scope: Scope, receive: Any, send: Any) -> None:
        await self._read_body(receive)
        self.in_progress += 1
        self.release.clear()
        released = asyncio.ensure_future(self.release.wait())
        disconnect = asyncio.ensure_future(receive())
        try:
            done, _ = await asyncio.wait({released, disconnect}, return_when="FIRST_COMPLETED")
        finally:
            self.in_progress -= 1
            released.cancel()
        if disconnect in done:
            self.disconnected += 1
            return
        disconnect.cancel()
        await self._json(send, {"replica": self.name, "held": True})

    async def _sse(self, scope: Scope, receive: Any, send: Any) -> None:
        count = int(parse_qs(scope["query_string"].decode()).get("n", ["3"])[0])
        self.release.clear()
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: token-0\n\n", "more_body": True})
        await self.release.wait()
        for i in range(1, count):
            event = f"data: token-{i}\n\n".encode()
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _upload(self, scope: Scope, receive: Any, send: Any) -> None:
        self.upload_bytes_seen = 0
        while True:
            message = await receive()
            self.upload_bytes_seen += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await self._json(send, {"replica": self.name, "bytes": self.upload_bytes_seen})

    async def _download(self, scope: Scope, receive: Any, send: Any) -> None:
        total = int(parse_qs(scope["query_string"].decode())["bytes"][0])
        block = b"d" * (1 << 20)
        self.download_bytes_sent = 0
        headers = [(b"content-length", str(total).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        while self.download_bytes_sent < total:
            part = block[: total - self.download_bytes_sent]
            await send({"type": "http.response.body", "body": part, "more_body": True})
            self.download_bytes_sent += len(part)
        await send({"type": "http.response.body", "body": b""})

    async def _break_after_start(self, scope: Scope, receive: Any, send: Any) -> None:
        await self._read_body(receive)
        headers = [(b"content-length", b"1000")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
        raise RuntimeError("replica dies after the response started (deliberate)")


class _Closer(asyncio.Protocol):
    """Reads whatever arrives and closes without a byte of response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.close()


async def _run_closer(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Closer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


@dataclass
class FakeController:
    """The controller's ``lb-sync`` endpoint, programmable from the test thread.

    ``status`` other than 200 makes it answer that status; every call is recorded in ``syncs``
    as ``(authorization header, parsed body)``, and the bodies it answered 200 in ``accepted``.
    ``lose_answers`` records the body as accepted, then drops the connection without an
    answer: a controller that recorded the report but whose answer was lost on the way.
    """

    ready_replicas: list[str] = field(default_factory=list)
    policy: str | None = None
    resume_streams: bool | None = None
    replica_weights: dict[str, float] | None = None
    session_header: str | None = None
    api_key_hashes: list[str] | None = None
    status: int = 200
    lose_answers: bool = False
    service: str = "svc"
    syncs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> str:
        controller = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                expected = f"/api/v1/services/{controller.service}/lb-sync"
                if self.path != expected:
                    self._answer(404, {"detail": f"no route {self.path}"})
                    return
                controller.syncs.append((self.headers.get("authorization", ""), body))
                if controller.status != 200:
                    self._answer(controller.status, {"detail": "programmed failure"})
                    return
                controller.accepted.append(body)
                if controller.lose_answers:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                answer: dict[str, Any] = {"ready_replicas": list(controller.ready_replicas)}
                if controller.policy:
                    answer["load_balancing_policy"] = controller.policy
                if controller.resume_streams is not None:
                    answer["resume_streams"] = controller.resume_streams
                if controller.replica_weights is not None:
                    answer["replica_weights"] = dict(controller.replica_weights)
                if controller.session_header is not None:
                    answer["session_header"] = controller.session_header
                if controller.api_key_hashes is not None:
                    answer["api_key_hashes"] = list(controller.api_key_hashes)
                self._answer(200, answer)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reported_count(self) -> int:
        """Requests the load balancer reported in syncs this controller accepted, each
        numbered report once (as the controller records them)."""
        reports = {(b.get("lb_id"), b.get("seq")): b for b in list(self.accepted)}
        return sum(int(body["request_count"]) for body in reports.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["backend", "closer"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="backend")
    args = parser.parse_args()
    if args.kind == "closer":
        asyncio.run(_run_closer(args.port))
        return
    import uvicorn

    uvicorn.run(BackendApp(args.name), host="127.0.0.1", port=args.port, log_level="error")


if __name__ == "__main__":
    main()
