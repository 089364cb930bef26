"""Request arrival times for the latency model: Poisson, the MAF trace, or a constant rate.

Deterministic given the generator passed in. Times are seconds from the window's start.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WORKLOADS = ("poisson", "maf", "constant")
MAF_CLIP_PERCENTILE = 90.0

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class WorkloadError(ValueError):
    """A workload file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class MafTrace:
    """Requests per minute, clipped at the 90th percentile (the raw trace has bursts of 10^4
    times its median) and divided by its mean: each minute's multiple of the mean rate."""

    per_minute: FloatArray
    path: Path


def load_maf(path: Path) -> MafTrace:
    """Read the `Time (min),Requests` CSV; refuse a malformed one naming the line."""
    counts: list[float] = []
    try:
        with path.open(newline="") as handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is None or len(header) < 2:
                raise WorkloadError(f"{path}: expected a header 'Time (min),Requests'")
            for line, row in enumerate(rows, start=2):
                try:
                    value = float(row[1])
                except (IndexError, ValueError) as exc:
                    raise WorkloadError(f"{path}:{line}: no request count in {row!r}") from exc
                if value < 0:
                    raise WorkloadError(f"{path}:{line}: negative request count {value}")
                counts.append(value)
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot be read ({exc})") from exc
    if not counts or sum(counts) <= 0:
        raise WorkloadError(f"{path}: no requests in the trace")
    raw = np.asarray(counts, dtype=np.float64)
    clipped = np.minimum(raw, np.percentile(raw, MAF_CLIP_PERCENTILE))
    return MafTrace(clipped / clipped.mean(), path)


def poisson_arrivals(rate: float, duration: float, rng: np.random.Generator) -> FloatArray:
    count = rng.poisson(rate * duration)
    return np.sort(rng.uniform(0.0, duration, size=count))


def constant_arrivals(rate: float, duration: float) -> FloatArray:
    gap = 1.0 / rate
    return np.arange(gap / 2, duration, gap, dtype=np.float64)


def maf_arrivals(
    maf: MafTrace, rate: float, duration: float, rng: np.random.Generator
) -> FloatArray:
    """Poisson arrivals whose rate per minute follows the MAF trace from a random minute."""
    minutes = int(np.ceil(duration / 60.0))
    start = int(rng.integers(0, len(maf.per_minute)))
    index = (start + np.arange(minutes)) % len(maf.per_minute)
    expected = maf.per_minute[index] * rate * 60.0
    counts = rng.poisson(expected)
    base = np.repeat(np.arange(minutes) * 60.0, counts)
    times = base + rng.uniform(0.0, 60.0, size=base.size)
    return np.sort(times[times < duration])


def arrivals(
    name: str, rate: float, duration: float, rng: np.random.Generator, maf: MafTrace | None
) -> FloatArray:
    if name == "poisson":
        return poisson_arrivals(rate, duration, rng)
    if name == "constant":
        return constant_arrivals(rate, duration)
    if name == "maf":
        if maf is None:
            raise WorkloadError("the maf workload needs the MAF trace (workloads/maf1.csv)")
        return maf_arrivals(maf, rate, duration, rng)
    raise WorkloadError(f"unknown workload {name!r}; choose one of: {', '.join(WORKLOADS)}")
