"""Runs the real boot script with bash, as a VM would, on this machine: the agent it starts
listens on 127.0.0.1 (SERVE_REPLICA_HOST) and keeps everything under the test's directory
(HOME, SERVE_AGENT_DIR, SERVE_REPLICA_LOG). `SERVE_TEST_AGENT_PYTHON` picks the agent's
interpreter (e.g. a Python 3.8, to check that the VM side still runs there)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from policies.types import Location, Offer
from provisioners.base import Bundle, LaunchRequest
from provisioners.startup_script import build_boot_script
from replica_manager.agent_client import (
    AgentClient,
    AgentPhase,
    AgentStatus,
    AgentUnreachable,
)

SECRET = "secret-value-5c1d9e7a"
ENV_VALUE = "env-value-8b2f4d61"
SETUP_TEXT = "setup-text-3e9a"
RUN_TEXT = "run-text-71c4"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_request(bundle: Bundle | None = None, **changes: object) -> LaunchRequest:
    """A request whose envs, secrets, setup and run are distinctive strings, so that a test
    can look for them anywhere they must not be."""
    fields: dict[str, object] = {
        "service": "chat",
        "replica_id": 3,
        "launch_token": uuid.uuid4().hex,
        "controller_id": "ctrl",
        "offer": Offer(Location("local", "here", "here-a"), 1.0, 0.3, "local-process"),
        "spot": True,
        "port": free_port(),
        "setup": f"echo {SETUP_TEXT} > setup.out",
        "run": f"echo {RUN_TEXT}; env > run.env",
        "envs": {"MODEL_NAME": ENV_VALUE},
        "secrets": {"HF_TOKEN": SECRET},
        "bundle": bundle,
        "agent_token": uuid.uuid4().hex,
    }
    fields.update(changes)
    return LaunchRequest(**fields)  # type: ignore[arg-type]


def job_for(
    request: LaunchRequest, bucket_mounts: list[dict[str, object]] | None = None
) -> dict[str, object]:
    return {
        "setup": request.setup,
        "run": request.run,
        "envs": dict(request.envs),
        "secrets": dict(request.secrets),
        "bucket_mounts": bucket_mounts or [],
        "service": request.service,
        "replica_id": request.replica_id,
        "port": request.port,
    }


@dataclass
class BootedAgent:
    request: LaunchRequest
    process: subprocess.Popen[bytes]
    url: str
    root: Path
    script: Path = field(init=False)
    home: Path = field(init=False)
    directory: Path = field(init=False)
    log: Path = field(init=False)
    output: Path = field(init=False)

    def __post_init__(self) -> None:
        self.script = self.root / "boot.sh"
        self.home = self.root / "home"
        self.directory = self.root / "agent"
        self.log = self.root / "replica.log"
        self.output = self.root / "console.out"

    @property
    def workdir(self) -> Path:
        return self.home / "serve_workdir"

    def client(self, token: str | None = None, pinned: str | None = None) -> AgentClient:
        return AgentClient(self.url, token or self.request.agent_token, pinned, timeout=5)

    def trusted(self, seconds: float = 20) -> AgentClient:
        """A client that has checked the agent's proof (once the port is up)."""
        client = self.client()
        deadline = time.monotonic() + seconds
        while True:
            try:
                client.hello()
                return client
            except AgentUnreachable:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def wait_for(self, *phases: AgentPhase, seconds: float = 20) -> AgentStatus:
        client = self.trusted(seconds)
        deadline = time.monotonic() + seconds
        while (status := client.status()).phase not in phases:
            assert time.monotonic() < deadline, f"still {status} after {seconds}s"
            time.sleep(0.05)
        return status

    def console(self) -> str:
        """Everything the boot script and the agent wrote to stdout and stderr."""
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def boot(
    root: Path,
    request: LaunchRequest,
    bundle_url: str | None = None,
    *,
    cloud: str = "local",
    env: Mapping[str, str] | None = None,
    path: str | None = None,
) -> BootedAgent:
    """Writes the boot script for `request` and runs it in its own process group."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python3"
    if not python.exists():
        python.symlink_to(os.environ.get("SERVE_TEST_AGENT_PYTHON") or sys.executable)
    script = build_boot_script(request, bundle_url, cloud=cloud, agent_port=port)
    (root / "boot.sh").write_text(script)
    variables = {
        "PATH": f"{bin_dir}:{path if path is not None else os.environ['PATH']}",
        "HOME": str(root / "home"),
        "SERVE_AGENT_DIR": str(root / "agent"),
        "SERVE_REPLICA_LOG": str(root / "replica.log"),
        "SERVE_REPLICA_HOST": "127.0.0.1",
        **(env or {}),
    }
    with (root / "console.out").open("wb") as console:
        process = subprocess.Popen(
            ["/bin/bash", str(root / "boot.sh")],
            env=variables,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,
        )
    return BootedAgent(request, process, f"https://127.0.0.1:{port}", root)
