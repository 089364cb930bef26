"""What moves the local spot market over time: a recorded trace replayed faster than real
time, or a seeded random model. Pure given the driver settings and the time.

- trace: `{"mode": "trace", "path": DIR, "speedup": S, "offset_seconds": O, "started_at": T}`.
  The trace's zones (in file-name order) drive the market's zones in order; at wall time
  `now` the trace is read at `O + (now - T) * S` seconds, wrapping around at its end.
  Binary traces (1 = available) mean unlimited capacity.
- random: `{"mode": "random", "seed": N, "capacity": C, "mean_available_seconds": A,
  "mean_unavailable_seconds": U, "started_at": T}`. Each zone alternates between C and 0
  with exponentially distributed spells, a fixed sequence per (seed, zone).
"""

from __future__ import annotations

import functools
import random
from typing import Any

from policies.simulation.traces import SpotTrace, load_trace

Capacities = dict[str, int | None]


def capacities(driver: dict[str, Any], zones: list[str], now: float) -> Capacities:
    mode = driver.get("mode", "manual")
    if mode == "trace":
        return _from_trace(driver, zones, now)
    if mode == "random":
        return _from_random(driver, zones, now)
    return {}


@functools.lru_cache(maxsize=8)
def cached_trace(path: str) -> SpotTrace:
    return load_trace(path)


def _from_trace(driver: dict[str, Any], zones: list[str], now: float) -> Capacities:
    trace = cached_trace(str(driver["path"]))
    elapsed = max(0.0, now - float(driver["started_at"])) * float(driver.get("speedup", 1.0))
    at = (float(driver.get("offset_seconds", 0.0)) + elapsed) % trace.duration_seconds
    out: Capacities = {}
    for zone, zone_trace in zip(zones, trace.zones, strict=False):
        value = zone_trace.capacity[
            min(int(at // zone_trace.gap_seconds), len(zone_trace.capacity) - 1)
        ]
        out[zone] = (None if value else 0) if trace.binary else int(value)
    return out


def _from_random(driver: dict[str, Any], zones: list[str], now: float) -> Capacities:
    elapsed = max(0.0, now - float(driver["started_at"]))
    return {
        zone: int(driver.get("capacity", 4)) if _available(driver, index, elapsed) else 0
        for index, zone in enumerate(zones)
    }


def _available(driver: dict[str, Any], index: int, elapsed: float) -> bool:
    rng = random.Random(f"{driver.get('seed', 0)}/{index}")
    up = float(driver.get("mean_available_seconds", 300.0))
    down = float(driver.get("mean_unavailable_seconds", 60.0))
    t, available = 0.0, True
    while True:
        t += rng.expovariate(1.0 / (up if available else down))
        if t > elapsed:
            return available
        available = not available
