"""A replica whose health the test controls through files in its working directory:
`unhealthy` makes /health answer 503; `hang` makes it answer only after that many seconds;
POST /health must carry the JSON in `expect_post`."""

from __future__ import annotations

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, code: int) -> None:
        body = json.dumps({"replica": os.environ.get("SERVE_REPLICA_ID")}).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        hang = Path("hang")
        if hang.exists():
            time.sleep(float(hang.read_text() or "30"))
        self._answer(503 if Path("unhealthy").exists() else 200)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        expected = Path("expect_post")
        ok = not expected.exists() or json.loads(body) == json.loads(expected.read_text())
        self._answer(200 if ok and not Path("unhealthy").exists() else 400)


ThreadingHTTPServer(("127.0.0.1", int(os.environ["SERVE_REPLICA_PORT"])), Handler).serve_forever()
