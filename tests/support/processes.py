"""Real processes for tests: the controller daemon, and the `serve` CLI as a user runs it."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]

# Time is compressed by configuration, never by patching: ticks and syncs every half second.
FAST = {
    "SERVE_TICK_SECONDS": "0.5",
    "SERVE_LB_SYNC_SECONDS": "0.5",
    "SERVE_ORPHAN_SCAN_SECONDS": "2",
    "SERVE_NOT_READY_GRACE_SECONDS": "3",
    "SERVE_REFUSAL_BACKOFF_SECONDS": "3",
}


def lb_port_block() -> int:
    """Where a test controller starts looking for load balancer ports: below the kernel's
    ephemeral range (32768-60999 on Linux), where no `free_port()` or client connection
    lands, at a random place in a block of its own per pytest-xdist worker (a controller
    that picks a port another test's process holds keeps failing to start its load
    balancer there)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    index = int(worker) if worker.isdigit() else 0
    return 12000 + (index % 5) * 4000 + random.randrange(0, 3800, 10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], Any], what: str, timeout: float = 30.0, every: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Env:
    """One isolated installation: its own SERVE_HOME, database and ports."""

    home: Path
    database_url: str
    port: int = field(default_factory=free_port)
    lb_port_start: int = field(default_factory=lambda: lb_port_block())
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def vars(self) -> dict[str, str]:
        return {
            **os.environ,
            **FAST,
            "PYTHONPATH": str(REPO),
            "SERVE_HOME": str(self.home),
            "SERVE_DATABASE_URL": self.database_url,
            "SERVE_CONTROLLER_PORT": str(self.port),
            "SERVE_LB_PORT_START": str(self.lb_port_start),
            "SERVE_CONTROLLER_URL": self.url,
            **self.extra,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def serve(
        self, *args: str, timeout: float = 120.0, cwd: Path = REPO
    ) -> subprocess.CompletedProcess[str]:
        """Run the `serve` CLI exactly as a user would (a new process)."""
        return subprocess.run(
            [sys.executable, "-m", "controller", *args],
            env=self.vars,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self, name: str) -> dict[str, Any] | None:
        resp = httpx.get(f"{self.url}/api/v1/services/{name}", timeout=10)
        return None if resp.status_code == 404 else resp.json()


@dataclass
class ControllerProcess:
    env: Env
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ControllerProcess:
        self.env.home.mkdir(parents=True, exist_ok=True)
        log = (self.env.home / "daemon.out").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller.daemon"],
            env=self.env.vars,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._healthy, "the controller to answer /healthz", timeout=30)
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            out = (self.env.home / "daemon.out").read_text()[-3000:]
            raise AssertionError(f"controller exited with {self.proc.returncode}:\n{out}")
        try:
            return httpx.get(f"{self.env.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def processes_of(home: Path) -> list[str]:
    """Command lines of live processes started for this installation (replicas, LBs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue
        if f"SERVE_HOME={home}".encode() in environ.split(b"\0"):
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {cmd}")
    return found


def kill_everything_of(home: Path) -> None:
    for line in processes_of(home):
        pid = int(line.split(":")[0])
        if pid == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
