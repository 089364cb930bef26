"""How long the controller's own work takes, kept in memory for operators and the scale
benchmark: one service's tick; a cycle, the time from the start of a round (every service
handed to the tick pool) until every service of it was ticked once; the interval between two
ticks of a service (the period plus any queueing); and each probe.

Bounded: the newest `SAMPLES` of each; reading them costs a sort, writing them an append.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

SAMPLES = 20_000


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Sample = tuple[float, float]
"""(wall time it was taken, seconds it measured)."""


@dataclass
class Timings:
    ticks: deque[Sample] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    cycles: deque[Sample] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    intervals: deque[Sample] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    probes: deque[Sample] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    _last_start: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tick_started(self, service: str) -> float:
        now = time.monotonic()
        with self._lock:
            last = self._last_start.get(service)
            self._last_start[service] = now
        if last is not None:
            self.intervals.append((time.time(), now - last))
        return now

    def round_started(self, services: int) -> Round | None:
        """A round of `services` ticks; None when there is nothing to tick."""
        return Round(self, time.monotonic(), services) if services else None

    def tick_done(self, started: float) -> None:
        self.ticks.append((time.time(), time.monotonic() - started))

    def probed(self, seconds: float) -> None:
        self.probes.append((time.time(), seconds))

    def forget(self, service: str) -> None:
        with self._lock:
            self._last_start.pop(service, None)

    def summary(self, since: float = 0.0) -> dict[str, float | int | None]:
        """Quantiles of the samples taken since `since` (epoch seconds)."""
        ticks, cycles, intervals, probes = (
            [v for t, v in list(samples) if t >= since]
            for samples in (self.ticks, self.cycles, self.intervals, self.probes)
        )
        return {
            "tick_p50_ms": _ms(quantile(ticks, 0.5)),
            "tick_p99_ms": _ms(quantile(ticks, 0.99)),
            "cycle_p50_s": _round(quantile(cycles, 0.5)),
            "cycle_p99_s": _round(quantile(cycles, 0.99)),
            "tick_interval_p99_s": _round(quantile(intervals, 0.99)),
            "probe_p99_ms": _ms(quantile(probes, 0.99)),
            "ticks": len(ticks),
            "probes": len(probes),
        }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 2) if seconds is not None else None


def _round(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


class Round:
    """Counts the ticks of one round down; the last one to finish records the cycle."""

    def __init__(self, timings: Timings, started: float, services: int) -> None:
        self._timings, self._started, self._left = timings, started, services
        self._lock = threading.Lock()

    def ticked(self) -> None:
        with self._lock:
            self._left -= 1
            done = self._left == 0
        if done:
            self._timings.cycles.append((time.time(), time.monotonic() - self._started))
