"""Request latency from a queueing model over the replicas a run kept ready.

Model (the paper's artifact, made explicit): each request goes round-robin to one of the
replicas ready when it arrives and waits in that replica's FIFO queue; service times are
exponential with mean `service_mean`. A request fails if no replica is ready, if it has not
started within `timeout` seconds (it is dropped without being served), if it would finish
later than `timeout` after arriving (the client gave up), or if its replica is preempted
before it finishes. A replica that is scaled down drains its queue. A failed request
counts as `timeout` seconds in the percentiles, as in the artifact.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.simulation.engine import ReplicaSpan

DEFAULT_SERVICE_MEAN = 10.0
DEFAULT_TIMEOUT = 100.0


@dataclass(frozen=True)
class RequestOutcome:
    latencies: np.ndarray[Any, np.dtype[np.float64]]
    failed: np.ndarray[Any, np.dtype[np.bool_]]


def _boundaries(spans: Sequence[ReplicaSpan]) -> list[tuple[float, int, int]]:
    """(time, kind, span index) with kind 0 = stops serving, 1 = starts; stops sort first."""
    marks = []
    for i, span in enumerate(spans):
        if span.ready_at is not None and span.ready_at < span.ended_at:
            marks.append((span.ready_at, 1, i))
            marks.append((span.ended_at, 0, i))
    marks.sort()
    return marks


def service_times(
    count: int, rng: np.random.Generator, mean: float = DEFAULT_SERVICE_MEAN
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Exponential service times, one per request."""
    return rng.exponential(mean, size=count)


def serve_requests(
    arrivals: np.ndarray[Any, np.dtype[np.float64]],
    spans: Sequence[ReplicaSpan],
    service: np.ndarray[Any, np.dtype[np.float64]],
    timeout: float = DEFAULT_TIMEOUT,
) -> RequestOutcome:
    """Latency and failure of every request arriving at `arrivals` (sorted seconds), the
    i-th needing `service[i]` seconds of its replica."""
    latency = np.full(arrivals.size, timeout, dtype=np.float64)
    failed = np.ones(arrivals.size, dtype=np.bool_)
    marks = _boundaries(spans)
    serving: list[int] = []
    free_at = [0.0] * len(spans)
    cursor = turn = 0
    for i, arrived in enumerate(arrivals.tolist()):
        while cursor < len(marks) and marks[cursor][0] <= arrived:
            _, starts, index = marks[cursor]
            if starts:
                bisect.insort(serving, index)
            else:
                serving.remove(index)
            cursor += 1
        if not serving:
            continue
        index = serving[turn % len(serving)]
        turn += 1
        span = spans[index]
        start = max(arrived, free_at[index])
        if start - arrived > timeout:
            continue
        finish = start + float(service[i])
        free_at[index] = finish
        if finish - arrived > timeout or (span.lost and finish > span.ended_at):
            continue
        latency[i] = finish - arrived
        failed[i] = False
    return RequestOutcome(latency, failed)
