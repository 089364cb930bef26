"""Request rate per service from the load balancers' counts, averaged over a window."""

from __future__ import annotations

import threading
from collections import deque

DEFAULT_WINDOW_SECONDS = 60.0


class RequestRates:
    """Thread-safe: load balancer syncs write, the reconcile tick reads."""

    def __init__(self, window_seconds: float = DEFAULT_WINDOW_SECONDS):
        self.window = window_seconds
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._first: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, service: str, count: int, window_seconds: float, now: float) -> None:
        with self._lock:
            samples = self._samples.setdefault(service, deque())
            self._first.setdefault(service, now - max(0.0, window_seconds))
            samples.append((now, max(0, count)))
            self._trim(samples, now)

    def qps(self, service: str, now: float) -> float | None:
        """Average requests/s over the window; None before the first report."""
        with self._lock:
            samples = self._samples.get(service)
            if samples is None:
                return None
            self._trim(samples, now)
            span = min(self.window, max(1e-6, now - self._first[service]))
            return sum(c for _, c in samples) / span

    def forget(self, service: str) -> None:
        with self._lock:
            self._samples.pop(service, None)
            self._first.pop(service, None)

    def _trim(self, samples: deque[tuple[float, int]], now: float) -> None:
        while samples and samples[0][0] <= now - self.window:
            samples.popleft()
