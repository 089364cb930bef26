"""Wake from zero: a request that finds no ready replica waits for one instead of failing.

A service scaled to zero (`min_replicas: 0`) has no replica when its first request comes. The
request is held (at most `--wake-queue` held at once, each at most `--wake-wait` seconds)
while the load balancer syncs with the controller at once, which reports the request; the
controller's autoscaler scales up from zero on any traffic, and the request goes to the
first replica the next sync brings. Only when the wait runs out does the client get 503 with
`Retry-After`; beyond the queue's bound it gets that at once, so the queue never grows.
With `--workers N` the supervisor syncs on its own interval (no early sync).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class WakeQueue:
    """Requests waiting for the first ready replica, and the signals between them and the
    sync (constructed without I/O; events bind to the loop on first use)."""

    def __init__(self, bound: int, wait_seconds: float) -> None:
        self.bound = bound
        self.wait_seconds = wait_seconds
        self.waiting = 0
        self.sync_now = asyncio.Event()
        """Set when a request starts waiting: the sync goes now, not at its interval."""
        self._arrived = asyncio.Event()

    def replicas_changed(self, any_ready: bool) -> None:
        if any_ready:
            self._arrived.set()
            self._arrived = asyncio.Event()

    def full(self) -> bool:
        return self.waiting >= self.bound

    async def wait(self, check: Callable[[], bool]) -> bool:
        """Wait until `check()` is true or the wait runs out; False if it ran out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        self.waiting += 1
        self.sync_now.set()
        try:
            while not check():
                left = deadline - loop.time()
                if left <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    return check()
            return True
        finally:
            self.waiting -= 1
