"""Instance metadata services of AWS, GCP and Azure, as much of each as the agent's
preemption watcher reads, refusing what the real ones refuse. References:

- AWS IMDSv2 ("Use the Instance Metadata Service to access instance metadata", "Spot
  Instance interruption notices"): PUT /latest/api/token with
  X-aws-ec2-metadata-token-ttl-seconds (1-21600) returns a token; with IMDSv2 required, a
  GET without a valid X-aws-ec2-metadata-token is 401. /latest/meta-data/spot/instance-action
  is 404 until a stop or terminate is scheduled, then {"action": ..., "time": ...}.
- GCE ("About VM metadata", "Detect if a VM was preempted"): every request needs
  `Metadata-Flavor: Google`, else 403; /computeMetadata/v1/instance/preempted is FALSE, then
  TRUE once preemption has begun.
- Azure ("Azure Metadata Service: Scheduled Events for Linux VMs"):
  GET /metadata/scheduledevents?api-version=2020-07-01 with `Metadata: true` (else 400,
  "Bad request. Required metadata header not specified") returns DocumentIncarnation and
  Events, a preemption being EventType "Preempt".
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MetadataFake:
    def __init__(self) -> None:
        self.preempted = False
        self.tokens: set[str] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
                if self.path != "/latest/api/token" or not (
                    ttl.isdigit() and 1 <= int(ttl) <= 21600
                ):
                    return self.answer(400, "")
                token = uuid.uuid4().hex
                fake.tokens.add(token)
                self.answer(200, token)

            def do_GET(self) -> None:
                if self.path.startswith("/latest/"):
                    if self.headers.get("X-aws-ec2-metadata-token") not in fake.tokens:
                        return self.answer(401, "")
                    if self.path == "/latest/meta-data/spot/instance-action" and fake.preempted:
                        return self.answer(
                            200, json.dumps({"action": "terminate", "time": "2030-01-01T00:02:00Z"})
                        )
                    return self.answer(404, "")
                if self.path.startswith("/computeMetadata/"):
                    if self.headers.get("Metadata-Flavor") != "Google":
                        return self.answer(403, "Missing Metadata-Flavor:Google header.")
                    return self.answer(200, "TRUE" if fake.preempted else "FALSE")
                if self.path == "/metadata/scheduledevents?api-version=2020-07-01":
                    if self.headers.get("Metadata") != "true":
                        body = {"error": "Bad request. Required metadata header not specified"}
                        return self.answer(400, json.dumps(body))
                    events = (
                        [
                            {
                                "EventId": "E1",
                                "EventType": "Preempt",
                                "ResourceType": "VirtualMachine",
                                "Resources": ["vm"],
                                "EventStatus": "Scheduled",
                                "NotBefore": "Mon, 19 Sep 2030 18:29:47 GMT",
                                "EventSource": "Platform",
                                "DurationInSeconds": -1,
                            }
                        ]
                        if fake.preempted
                        else []
                    )
                    return self.answer(
                        200, json.dumps({"DocumentIncarnation": 1, "Events": events})
                    )
                self.answer(404, "")

            def answer(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> MetadataFake:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
