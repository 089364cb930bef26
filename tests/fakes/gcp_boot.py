"""Boot mode of the Compute Engine fake: instances that really run their startup script.

Each instance that becomes RUNNING runs `metadata.items[startup-script]` with bash as a local
process (its own process group) in a new directory of its own, as GCE's guest agent runs it
as root at boot ("About startup scripts"):

    <root>/<instance>-<n>/startup-script   the script, as the guest agent writes it out
    <root>/<instance>-<n>/serial-port-1    what it printed (the VM's serial console)
    <root>/<instance>-<n>/home             HOME
    <root>/<instance>-<n>/agent            SERVE_AGENT_DIR
    <root>/<instance>-<n>/replica.log      SERVE_REPLICA_LOG
    <root>/<instance>-<n>/pid              its process group (`kill -9 -$(cat pid)`: a crash)

Its environment is written out in full (nothing of the caller's leaks in, SERVE_* least of
all): PATH (a `python3` of our choosing first), HOME, the agent's folders, its own loopback
address `127.77.x.y` as SERVE_REPLICA_HOST (the same address is the instance's `natIP`), and
SERVE_METADATA_URL pointing at this fake's metadata server for that instance.

The metadata server answers what the agent reads, as GCE's does ("About VM metadata",
"Detect if a VM was preempted"): `GET /computeMetadata/v1/instance/preempted` is `FALSE`,
then `TRUE` once preemption has begun, as `application/text` with `Metadata-Flavor: Google`;
a request without the `Metadata-Flavor: Google` header, or with `X-Forwarded-For`, is 403.

Ending an instance (delete, preemption, a stop) kills its process group; a process that ends
on its own (a test killing it) is a VM whose OS halted: the fake shows it TERMINATED.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.fakes.boot_process import power_off, run_boot_script
from tests.fakes.json_http import LoopbackServer

PREEMPTED_PATH = "/computeMetadata/v1/instance/preempted"
_INSTANCE_PATH = re.compile(r"^/instances/(?P<name>[^/]+)(?P<rest>/.*)$")


@dataclass
class BootedInstance:
    """One instance's process and its folder."""

    name: str
    address: str
    directory: Path
    process: subprocess.Popen[bytes]
    started_at: float
    """When the process was started (seconds since the epoch, as the agent's clock)."""
    preempted: bool = False
    ended: bool = field(default=False)
    """Ended by the fake (deleted, preempted, stopped), as opposed to halting by itself."""

    @property
    def console(self) -> Path:
        return self.directory / "serial-port-1"

    @property
    def replica_log(self) -> Path:
        return self.directory / "replica.log"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        power_off(self.process)


class InstanceBooter:
    """Runs instances' startup scripts; the metadata server is started by `start()`."""

    def __init__(self, root: Path | None = None, python: str | None = None) -> None:
        self._root = root
        self._own_root = root is None
        self.python = python or os.environ.get("SERVE_TEST_AGENT_PYTHON") or sys.executable
        self.instances: dict[str, BootedInstance] = {}
        self._first_block = random.randrange(256)
        """Where addresses start, so that two fakes on one machine rarely share one."""
        self._addresses = itertools.count()
        self._boots = itertools.count(1)
        self._metadata: LoopbackServer | None = None
        self._lock = threading.RLock()

    @property
    def root(self) -> Path:
        assert self._root is not None, "call start() first"
        return self._root

    @property
    def metadata_url(self) -> str:
        assert self._metadata is not None, "call start() first"
        return self._metadata.url

    def start(self) -> None:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="gcp-boot-"))
        self._root.mkdir(parents=True, exist_ok=True)
        self._metadata = LoopbackServer(_metadata_handler(self))
        self._metadata.start()

    def stop(self) -> None:
        """Every instance's processes end; then the metadata server."""
        with self._lock:
            booted = list(self.instances.values())
        for inst in booted:
            inst.ended = True
            inst.kill()
        if self._metadata is not None:
            self._metadata.stop()
            self._metadata = None
        if self._own_root and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def new_address(self) -> str:
        """A loopback address of the instance's own (Linux routes all of 127/8 to lo)."""
        n = next(self._addresses)
        return f"127.77.{(self._first_block + n // 253) % 256}.{2 + n % 253}"

    def boot(self, name: str, address: str, script: str) -> BootedInstance:
        directory = self.root / f"{name}-{next(self._boots)}"
        started_at = time.time()
        process = run_boot_script(
            directory,
            script.encode(),
            script_name="startup-script",
            console_name="serial-port-1",
            address=address,
            metadata_url=f"{self.metadata_url}/instances/{name}",
            python=self.python,
        )
        inst = BootedInstance(name, address, directory, process, started_at)
        with self._lock:
            self.instances[name] = inst
        return inst

    def end(self, name: str) -> None:
        """The VM is going away (deleted, preempted, stopped): its processes end now."""
        with self._lock:
            inst = self.instances.get(name)
        if inst is not None:
            inst.ended = True
            inst.kill()

    def notice_preemption(self, name: str) -> None:
        with self._lock:
            inst = self.instances.get(name)
            if inst is not None:
                inst.preempted = True

    def halted(self, name: str) -> bool:
        """Whether the instance's process ended by itself (its OS halted, as the fake
        shows it), not because the fake ended it."""
        with self._lock:
            inst = self.instances.get(name)
        return inst is not None and not inst.ended and not inst.alive()

    def preempted(self, name: str) -> bool:
        with self._lock:
            inst = self.instances.get(name)
            return inst is not None and inst.preempted


def _metadata_handler(booter: InstanceBooter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.headers.get("Metadata-Flavor") != "Google" or self.headers.get(
                "X-Forwarded-For"
            ):
                return self._answer(403, "Missing Metadata-Flavor:Google header.\n")
            found = _INSTANCE_PATH.match(self.path)
            if found is None or found["rest"] != PREEMPTED_PATH:
                return self._answer(404, "Not found\n")
            self._answer(200, "TRUE" if booter.preempted(found["name"]) else "FALSE")

        def _answer(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", "application/text")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
