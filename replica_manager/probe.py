"""Readiness probes: an HTTP GET (or POST with `post_data`) that must answer 2xx in time.

Probes run beside the ticks, never inside them. A `ProbeBoard` keeps every target a tick
asked about probed once per `interval` on its own event-loop thread (asyncio, the httptools
parser the load balancer uses, one kept-alive connection per replica, at most
`concurrency` probes at once), and a tick reads the newest result of each replica it
follows. So a replica that takes its whole timeout to answer delays nobody's tick, and a
fleet of thousands of replicas costs the controller little CPU. A target no tick has asked
about for three intervals is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from replica_manager.records import ProbeSpec

MAX_BODY_BYTES = 64 * 1024
FORGET_AFTER_INTERVALS = 3


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


@dataclass(frozen=True)
class ProbeReading:
    """The newest result for a target; `seq` grows by one with each probe that finished."""

    seq: int
    result: ProbeResult
    at: float


@dataclass
class _Target:
    url: str
    spec: ProbeSpec
    wanted_at: float
    next_at: float = 0.0
    in_flight: bool = False
    seq: int = 0
    reading: ProbeReading | None = None
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)


class ProbeBoard:
    def __init__(
        self,
        interval: float,
        concurrency: int = 256,
        on_probe: Callable[[float], None] | None = None,
    ) -> None:
        self.interval = interval
        self._concurrency = concurrency
        self._on_probe = on_probe
        self._targets: dict[tuple[str, str], _Target] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="probes", daemon=True)
        self._thread.start()
        ready.wait()

    def close(self) -> None:
        self._stopping = True
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reading(self, url: str, spec: ProbeSpec) -> ProbeReading | None:
        """The newest result for `url` + `spec` (None before the first); asking keeps the
        target probed, and a new target is probed at once."""
        now = time.monotonic()
        key = (url, _spec_key(spec))
        with self._lock:
            target = self._targets.get(key)
            if target is None:
                target = self._targets[key] = _Target(url, spec, now)
                self._poke()
            target.wanted_at = now
            return target.reading

    # -- the loop thread -----------------------------------------------------------------

    def _poke(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._wake = asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._schedule())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.close()

    async def _schedule(self) -> None:
        assert self._wake is not None
        slots = asyncio.Semaphore(self._concurrency)
        tasks: set[asyncio.Task[None]] = set()
        while not self._stopping:
            now = time.monotonic()
            due, wait = self._due(now)
            for target in due:
                task = asyncio.ensure_future(self._probe(target, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def _due(self, now: float) -> tuple[list[_Target], float]:
        """Targets to probe now (marked in flight), and how long until the next is due."""
        due, wait = [], self.interval
        forget = FORGET_AFTER_INTERVALS * self.interval
        with self._lock:
            for key, target in list(self._targets.items()):
                if now - target.wanted_at > forget and not target.in_flight:
                    for _, writer in target.idle:
                        writer.close()
                    del self._targets[key]
                elif not target.in_flight and target.next_at <= now:
                    target.in_flight = True
                    due.append(target)
                elif not target.in_flight:
                    wait = min(wait, target.next_at - now)
        return due, max(0.01, wait)

    async def _probe(self, target: _Target, slots: asyncio.Semaphore) -> None:
        async with slots:
            began = time.monotonic()
            result = await _fetch(target)
            if self._on_probe is not None:
                self._on_probe(time.monotonic() - began)
        with self._lock:
            target.seq += 1
            target.reading = ProbeReading(target.seq, result, time.time())
            target.next_at = time.monotonic() + self.interval
            target.in_flight = False


def _spec_key(spec: ProbeSpec) -> str:
    """What makes two probes of one URL different requests (the spec holds dicts)."""
    return json.dumps(
        [spec.path, spec.timeout_seconds, spec.post_data, sorted(spec.headers.items())],
        sort_keys=True,
    )


async def _fetch(target: _Target) -> ProbeResult:
    spec = target.spec
    url = target.url.rstrip("/") + spec.path
    try:
        return await asyncio.wait_for(_exchange(target, url), timeout=spec.timeout_seconds)
    except TimeoutError:
        return ProbeResult(False, f"no answer from {url} within {spec.timeout_seconds:g}s")
    except (OSError, httptools.HttpParserError, ValueError) as exc:
        return ProbeResult(False, f"{type(exc).__name__} from {url}: {exc}")


async def _exchange(target: _Target, url: str) -> ProbeResult:
    parts = urlsplit(target.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if target.idle:
        reader, writer = target.idle.pop()
    else:
        reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(_request(target.spec, f"{host}:{port}"))
        response = await _Response.read(reader)
    except BaseException:
        writer.close()
        raise
    if response.keep_alive:
        target.idle.append((reader, writer))
    else:
        writer.close()
    if 200 <= response.status < 300:
        return ProbeResult(True, f"{response.status} from {url}")
    return ProbeResult(False, f"{response.status} from {url}")


def _request(spec: ProbeSpec, host: str) -> bytes:
    headers = {"host": host, "user-agent": "spotserve-probe", **spec.headers}
    body = b""
    method = "GET"
    if spec.post_data is not None:
        method = "POST"
        data = spec.post_data
        body = (json.dumps(data) if isinstance(data, dict) else data).encode()
        headers.setdefault("content-type", "application/json")
        headers["content-length"] = str(len(body))
    lines = [f"{method} {spec.path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Response:
    """One response read off a kept-alive connection with httptools."""

    def __init__(self) -> None:
        self.status = 0
        self.done = False
        self.closed = False
        self.body_bytes = 0
        self.parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        self.done = True

    def on_body(self, data: bytes) -> None:
        self.body_bytes += len(data)

    @property
    def keep_alive(self) -> bool:
        return (
            self.done
            and not self.closed
            and bool(self.parser.should_keep_alive())
            and self.body_bytes <= MAX_BODY_BYTES
        )

    @classmethod
    async def read(cls, reader: asyncio.StreamReader) -> _Response:
        response = cls()
        while not response.done:
            data = await reader.read(65536)
            if not data:
                if not response.status:
                    raise ConnectionError("the replica closed the connection without answering")
                response.closed = True  # a body delimited by the connection's end
                break
            response.parser.feed_data(data)
            response.status = response.parser.get_status_code()
            if response.body_bytes > MAX_BODY_BYTES:
                break
        return response
