"""Process fixtures: replicas and load balancers run as real processes on loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.load_balancer.servers import FakeController

REPO = Path(__file__).resolve().parents[2]
SERVERS = Path(__file__).with_name("servers.py")
HELLO = REPO / "examples" / "hello" / "app.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def kill_group(self) -> None:
        """SIGKILL the process group, as a preempted VM takes everything on it at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)

    def stderr_text(self) -> str:
        self.kill()
        assert self.process.stderr is not None
        return self.process.stderr.read().decode()


class ProcessFactory:
    def __init__(self) -> None:
        self.started: list[Proc] = []

    def _spawn(
        self, args: list[str], port: int, env: dict[str, str] | None = None, group: bool = False
    ) -> Proc:
        process = subprocess.Popen(
            [sys.executable, *args],
            env={**_env(), **(env or {})},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=group,
        )
        proc = Proc(process, port)
        self.started.append(proc)
        return proc

    def backend(self, name: str) -> Proc:
        port = free_port()
        proc = self._spawn([str(SERVERS), "backend", "--port", str(port), "--name", name], port)
        wait_until(lambda: _accepts(port), f"backend {name}")
        return proc

    def hello(self, replica_id: str, token_delay: float) -> Proc:
        """``examples/hello/app.py`` in its own process group (for ``Proc.kill_group``)."""
        port = free_port()
        env = {
            "SERVE_REPLICA_ID": replica_id,
            "SERVE_REPLICA_PORT": str(port),
            "SERVE_REPLICA_HOST": "127.0.0.1",
            "HELLO_TOKEN_DELAY": str(token_delay),
        }
        proc = self._spawn([str(HELLO)], port, env, group=True)
        wait_until(lambda: _accepts(port), f"hello replica {replica_id}")
        return proc

    def closer(self) -> Proc:
        port = free_port()
        proc = self._spawn([str(SERVERS), "closer", "--port", str(port)], port)
        wait_until(lambda: _accepts(port), "closer replica")
        return proc

    def lb(
        self, *flags: str, wait_ready: int | None = None, tls: ssl.SSLContext | None = None
    ) -> Proc:
        """Start ``python -m load_balancer`` and wait until /-/healthz answers (and, with
        ``wait_ready``, until it reports that many ready replicas). With ``tls`` (a client
        context trusting its certificate) it is asked over HTTPS."""
        port = free_port()
        args = ["-m", "load_balancer", "--port", str(port), "--host", "127.0.0.1", *flags]
        proc = self._spawn(args, port)
        if tls is not None:
            proc.scheme = "https"

        def healthy() -> bool:
            if proc.process.poll() is not None:
                raise AssertionError(f"load balancer exited: {proc.stderr_text()}")
            try:
                body = httpx.get(f"{proc.url}/-/healthz", timeout=1, verify=tls or True).json()
            except httpx.HTTPError:
                return False
            return wait_ready is None or body["ready_replicas"] == wait_ready

        wait_until(healthy, "load balancer health")
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.process.poll() is None:
                proc.process.terminate()
        for proc in self.started:
            try:
                proc.process.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def procs() -> Iterator[ProcessFactory]:
    factory = ProcessFactory()
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_procs() -> Iterator[ProcessFactory]:
    factory = ProcessFactory()
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def two_backends(module_procs: ProcessFactory) -> tuple[Proc, Proc]:
    return module_procs.backend("A"), module_procs.backend("B")


@pytest.fixture
def controller() -> Iterator[FakeController]:
    fake = FakeController()
    yield fake
    fake.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "lb.token"
    path.write_text("s3cret-token\n")
    return path
