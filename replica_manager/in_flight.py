"""Provider calls that run beside the tick instead of inside it.

A launch or a terminate may take seconds on a real cloud, and a cloud that hangs holds its
call until the SDK's read timeout. The tick starts each call here, waits for them only a
bounded time (so a quick cloud is still seen in the same tick, for same-tick failover), and
picks up the rest on a later tick. A call already running for a key is not started twice,
so a slow launch is never repeated by the next tick. Outcomes are also written to the
database by the call itself: a result nobody collects (the controller stopped leading)
loses nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


@dataclass
class InFlight(Generic[K, R]):
    """Background calls keyed by what they act on (a launch token, a replica row id)."""

    pool: ThreadPoolExecutor
    _calls: dict[K, Future[R]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, key: K, call: Callable[[], R]) -> bool:
        """Start `call` unless one for `key` is still running; True if started."""
        with self._lock:
            running = self._calls.get(key)
            if running is not None and not running.done():
                return False
            self._calls[key] = self.pool.submit(call)
            return True

    def wait(self, keys: set[K], timeout: float) -> None:
        """Wait up to `timeout` seconds for the calls of `keys` (the rest run on)."""
        with self._lock:
            futures = [f for k, f in self._calls.items() if k in keys]
        if futures and timeout > 0:
            wait(futures, timeout=timeout)

    def collect(self, keys: set[K]) -> list[tuple[K, R]]:
        """Finished calls among `keys`, removed from the set; a call that raised re-raises."""
        with self._lock:
            done = [(k, f) for k, f in self._calls.items() if k in keys and f.done()]
            for k, _ in done:
                del self._calls[k]
        return [(k, f.result()) for k, f in done]

    def running(self) -> set[K]:
        with self._lock:
            return {k for k, f in self._calls.items() if not f.done()}
