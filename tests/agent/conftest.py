"""Fixtures for the replica agent's tests: agents booted from the real boot script, and
real local file servers (http.server) for bundles and bucket mounts."""

from __future__ import annotations

import functools
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from provisioners.base import LaunchRequest
from tests.agent.harness import BootedAgent, boot

Boot = Callable[..., BootedAgent]


@pytest.fixture
def boot_agent(tmp_path: Path) -> Iterator[Boot]:
    """`boot_agent(request, bundle_url=None, cloud=..., env=..., path=...)`; every agent it
    started is stopped (its process group) afterwards."""
    started: list[BootedAgent] = []

    def start(request: LaunchRequest, bundle_url: str | None = None, **kw: object) -> BootedAgent:
        agent = boot(tmp_path / f"vm{len(started)}", request, bundle_url, **kw)  # type: ignore[arg-type]
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real http.server serving a fresh directory: (directory, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Gate(threading.Event):
    """Set it to let the gated server answer."""


@pytest.fixture
def gated_file_server(tmp_path: Path) -> Iterator[tuple[Path, str, _Gate]]:
    """Like `file_server`, but every GET waits until the gate is set (at most 30 s)."""
    root = tmp_path / "gated"
    root.mkdir()
    gate = _Gate()

    class Gated(_Quiet):
        def do_GET(self) -> None:
            gate.wait(30)
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Gated, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", gate
    gate.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def self_signed_https_server(tmp_path: Path) -> Iterator[str]:
    """An HTTPS http.server whose certificate nobody trusts: its base URL."""
    cert, key = tmp_path / "https-cert.pem", tmp_path / "https-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    root = tmp_path / "https-served"
    root.mkdir()
    (root / "data.bin").write_bytes(b"bucket data")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
