"""Start, find and stop the per-service load balancer process.

The load balancer outlives controller restarts: its pid is kept on the service row, and a
restarted controller re-adopts it when that pid still runs our load balancer for that service.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from common.processes import is_alive, kill_group
from controller.child_env import child_env
from controller.settings import Settings
from controller.spec.models import TLS


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on `host:port` now (a port left in TIME_WAIT by our own
    load balancer or controller counts as free, as both reuse it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str, start: int, taken: Iterable[int]) -> int:
    used = set(taken)
    for port in range(start, start + 5000):
        if port not in used and port_is_free(host, port):
            return port
    raise RuntimeError(f"no free load balancer port in {start}-{start + 5000} on {host}")


def is_our_lb(pid: int | None, service: str) -> bool:
    if not pid or not is_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in cmdline]
    return "load_balancer" in args and service in args


def tls_flags(tls: TLS | None) -> list[str]:
    return [] if tls is None else ["--tls-certfile", tls.certfile, "--tls-keyfile", tls.keyfile]


def serves_tls_as(pid: int | None, tls: TLS | None) -> bool:
    """Whether the running load balancer was started with these TLS files (or without TLS,
    as asked): a `serve update` that changes `service.tls` needs a new one."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    running = [a.decode(errors="replace") for a in args if a]
    if "--tls-certfile" not in running:
        return tls is None
    at = running.index("--tls-certfile")
    return running[at : at + 4] == tls_flags(tls)


def start_lb(
    settings: Settings, service: str, port: int, policy: str, tls: TLS | None = None
) -> int:
    log_dir = settings.service_log_dir(service)
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "load_balancer",
        "--host",
        settings.lb_host,
        "--port",
        str(port),
        "--controller-url",
        settings.controller_urls,
        "--service",
        service,
        "--token-file",
        str(settings.token_path),
        "--sync-interval",
        str(settings.lb_sync_seconds),
        "--policy",
        policy,
        "--wake-wait",
        str(settings.wake_wait_seconds),
        "--wake-queue",
        str(settings.wake_queue),
        *tls_flags(tls),
    ]
    with (log_dir / "lb.log").open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env(),
        )
    return proc.pid


def stop_lb(pid: int | None, service: str) -> None:
    if pid and is_our_lb(pid, service):
        kill_group(pid, grace_seconds=5)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
