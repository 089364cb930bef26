"""Process layout: one event loop serving the port, or a supervisor with forked workers.

With ``--workers N > 1`` the supervisor binds the socket, forks N workers that accept on it,
and is the only process that talks to the controller: it reads the request total from the
shared telemetry, syncs, and sends each worker the ready list (with telemetry slots and
weights), the policy, the resume setting, the session header and the API key hashes over a
pipe. So the controller sees one load balancer with one exact count, and ``/-/metrics`` on
any worker sums every worker's row. A worker that dies is replaced and gets the last list.

With TLS every process that serves (the single one, or each worker) holds its own
``ServerCertificate`` and watches the files; the supervisor checks the pair loads before it
forks, and passes SIGHUP on to the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from typing import Any

import uvloop

from load_balancer.client_connection import ClientConnection
from load_balancer.config import LBConfig
from load_balancer.controller_sync import ControllerSync, SyncUpdate, standalone_assignments
from load_balancer.proxy_app import ProxyApp
from load_balancer.structured_log import log_event
from load_balancer.telemetry import Telemetry
from load_balancer.tls import ServerCertificate, load_context

_DRAIN_SECONDS = 10.0


def bind_socket(config: LBConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror}; pick a free --port"
        ) from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def run_loop(config: LBConfig, main: Coroutine[Any, Any, None]) -> None:
    if config.event_loop == "uvloop":
        uvloop.run(main)
    else:
        asyncio.run(main)


def serve(config: LBConfig) -> None:
    """Run until SIGTERM; raises TlsError (naming the file) before binding if TLS files do
    not load."""
    if config.tls is not None:
        load_context(config.tls)
    sock = bind_socket(config)
    if config.workers == 1:
        telemetry = Telemetry(1)
        run_loop(config, _serve_single(config, telemetry, sock))
    else:
        _Supervisor(config, sock).run()


async def _start_worker(
    config: LBConfig, telemetry: Telemetry, index: int, sock: socket.socket
) -> tuple[ProxyApp, asyncio.Server, asyncio.Event]:
    loop = asyncio.get_running_loop()
    certificate = None
    if config.tls is not None:
        certificate = ServerCertificate(config.tls, config.tls_check_seconds)
    app = ProxyApp(config, telemetry, index, certificate)
    if certificate is None:
        server = await loop.create_server(lambda: ClientConnection(app), sock=sock)
    else:
        server = await loop.create_server(
            lambda: ClientConnection(app),
            sock=sock,
            ssl=certificate.start(),
            # A handshake is part of the request head: bounded by the same timeout.
            ssl_handshake_timeout=config.request_head_timeout,
        )
        loop.add_signal_handler(signal.SIGHUP, certificate.request_reload)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return app, server, stop


def _watch_certificate(app: ProxyApp) -> asyncio.Task[None] | None:
    if app.certificate is None:
        return None
    return asyncio.get_running_loop().create_task(app.certificate.watch())


async def _drain(app: ProxyApp, server: asyncio.Server) -> None:
    """Stop accepting, then let requests in flight finish (bounded by _DRAIN_SECONDS)."""
    server.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _DRAIN_SECONDS
    while app.counters.in_flight_total() > 0 and loop.time() < deadline:
        await asyncio.sleep(0.05)


async def _serve_single(config: LBConfig, telemetry: Telemetry, sock: socket.socket) -> None:
    app, server, stop = await _start_worker(config, telemetry, 0, sock)
    watcher = _watch_certificate(app)
    sync_task = None
    if config.standalone:
        app.apply(SyncUpdate(standalone_assignments(config)))
    else:
        syncer = ControllerSync(
            config,
            telemetry.received_total,
            app.apply,
            wake=app.wake,
            in_flight=telemetry.in_flight_total,
            synced=lambda: telemetry.sync_succeeded(time.time()),
            tokens=telemetry.tokens_by_slot,
        )
        sync_task = asyncio.get_running_loop().create_task(syncer.run())
    log_event("info", "lb_started", **_describe(config))
    await stop.wait()
    for task in (sync_task, watcher):
        if task is not None:
            task.cancel()
    await _drain(app, server)
    log_event("info", "lb_stopped", service=config.service_label)


def _describe(config: LBConfig) -> dict[str, object]:
    return {
        "service": config.service_label,
        "listen": f"{config.host}:{config.port}",
        "policy": config.policy,
        "workers": config.workers,
        "mode": "standalone" if config.standalone else "controller",
        "replicas": list(config.replicas),
        "resume_streams": config.resume_streams,
        "session_header": config.session_header,
        "tls": config.tls_certfile is not None,
    }


async def _worker_main(
    config: LBConfig, telemetry: Telemetry, index: int, sock: socket.socket, updates_fd: int
) -> None:
    app, server, stop = await _start_worker(config, telemetry, index, sock)
    loop = asyncio.get_running_loop()
    # One line per update: up to 1,000 replicas and 1,000 key hashes, past the 64 KiB default.
    reader = asyncio.StreamReader(limit=1 << 22)
    pipe = os.fdopen(updates_fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)

    async def follow_updates() -> None:
        while line := await reader.readline():
            message = json.loads(line)
            pairs = [(url, int(slot)) for url, slot in message["replicas"]]
            resume = message.get("resume_streams")
            weights = {str(u): float(w) for u, w in (message.get("weights") or {}).items()}
            header = message.get("session_header")
            hashes = message.get("api_key_hashes")
            keys = None if hashes is None else frozenset(hashes)
            app.apply(SyncUpdate(pairs, message.get("policy"), resume, weights, header, keys))
        stop.set()

    follower = loop.create_task(follow_updates())
    watcher = _watch_certificate(app)
    await stop.wait()
    follower.cancel()
    if watcher is not None:
        watcher.cancel()
    await _drain(app, server)


class _Supervisor:
    """Forks the workers, syncs with the controller for all of them, replaces dead ones."""

    def __init__(self, config: LBConfig, sock: socket.socket) -> None:
        self.config = config
        self.sock = sock
        self.telemetry = Telemetry(config.workers, shared=True)
        self.pipes: dict[int, int] = {}
        self.pids: dict[int, int] = {}
        self.last_message = b""
        self.resume_streams: bool | None = None
        self.session_header: str | None = None
        self.api_key_hashes: frozenset[str] | None = None

    def run(self) -> None:
        for index in range(self.config.workers):
            self._fork(index)
        run_loop(self.config, self._supervise())

    def _fork(self, index: int) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(write_fd)
            for fd in self.pipes.values():
                os.close(fd)
            code = 0
            try:
                run_loop(
                    self.config,
                    _worker_main(self.config, self.telemetry, index, self.sock, read_fd),
                )
            except BaseException as exc:
                log_event("error", "worker_crashed", worker=index, error=repr(exc))
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(read_fd)
        self.pipes[index] = write_fd
        self.pids[index] = pid
        if self.last_message:
            os.write(write_fd, self.last_message)

    def broadcast(self, update: SyncUpdate) -> None:
        """Send every worker the update; a worker forked later gets the last one, so the
        resume setting, session header and API key hashes sent are the last ones the
        controller gave, not only this sync's."""
        if update.resume_streams is not None:
            self.resume_streams = update.resume_streams
        if update.session_header is not None:
            self.session_header = update.session_header
        if update.api_key_hashes is not None:
            self.api_key_hashes = update.api_key_hashes
        hashes = self.api_key_hashes
        message = {
            "replicas": [[url, slot] for url, slot in update.assignments],
            "policy": update.policy,
            "resume_streams": self.resume_streams,
            "weights": update.weights,
            "session_header": self.session_header,
            "api_key_hashes": None if hashes is None else sorted(hashes),
        }
        self.last_message = json.dumps(message).encode() + b"\n"
        for fd in self.pipes.values():
            with contextlib.suppress(OSError):
                os.write(fd, self.last_message)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if self.config.tls is not None:
            loop.add_signal_handler(signal.SIGHUP, self._signal_workers, signal.SIGHUP)
        sync_task = None
        if self.config.standalone:
            self.broadcast(SyncUpdate(standalone_assignments(self.config)))
        else:
            syncer = ControllerSync(
                self.config,
                self.telemetry.received_total,
                self.broadcast,
                in_flight=self.telemetry.in_flight_total,
                synced=lambda: self.telemetry.sync_succeeded(time.time()),
                tokens=self.telemetry.tokens_by_slot,
            )
            sync_task = loop.create_task(syncer.run())
        log_event("info", "lb_started", **_describe(self.config))
        while not stop.is_set():
            self._replace_dead_workers()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        if sync_task is not None:
            sync_task.cancel()
        self._stop_workers()

    def _replace_dead_workers(self) -> None:
        for index, pid in list(self.pids.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                log_event("warning", "worker_died", worker=index, status=status)
                os.close(self.pipes.pop(index))
                self.telemetry.worker(index).clear_in_flight()
                self._fork(index)

    def _signal_workers(self, sig: int) -> None:
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _stop_workers(self) -> None:
        self._signal_workers(signal.SIGTERM)
        for pid in self.pids.values():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        log_event("info", "lb_stopped", service=self.config.service_label)
