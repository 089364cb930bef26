"""Request rate per service from the load balancers' reported counts. Pure.

Each sample is one load balancer sync: `count` requests received over the `window_seconds`
before `at`. The rate is the sum over samples that end inside the averaging window divided
by the time covered, which is the window once the service has been reporting for that long.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class CountSample:
    at: float
    count: int
    window_seconds: float


def average_qps(
    samples: Iterable[CountSample], now: float, window: float = DEFAULT_WINDOW_SECONDS
) -> float | None:
    """Requests/s over the last `window` seconds; None before any report."""
    inside = [s for s in samples if now - window < s.at <= now]
    if not inside:
        return None
    began = min(s.at - s.window_seconds for s in inside)
    span = min(window, max(1e-6, now - began))
    return sum(max(0, s.count) for s in inside) / span


def mean_in_flight(samples: Iterable[tuple[str | None, float | None]]) -> float | None:
    """(load balancer id, requests in flight) samples -> each load balancer's mean, summed:
    the service's requests in flight however many load balancers front it."""
    by_lb: dict[str, list[float]] = {}
    for lb_id, in_flight in samples:
        if lb_id is not None and in_flight is not None:
            by_lb.setdefault(lb_id, []).append(in_flight)
    if not by_lb:
        return None
    return sum(sum(values) / len(values) for values in by_lb.values())
