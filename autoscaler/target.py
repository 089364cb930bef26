"""Request rate -> target replica count, with SkyPilot's upscale/downscale delays.

The count wanted at a rate is `ceil(rate / target_qps_per_replica)`, or, when the target is
given per accelerator, what the fleet's capacities need (`autoscaler/capacity.py`); with
`target_concurrency_per_replica` also `ceil(requests in flight / target)`, and the larger of
the two wins; the result is clipped to [min_replicas, max_replicas].

Pure: the caller passes the rate, the previous state and the time, and stores the state it
gets back (plain JSON), so a controller restart does not restart a long wait.

Hysteresis rule: a scale-up happens once the wanted count has stayed above the current
target for `upscale_delay_seconds` (a scale-down: below it for `downscale_delay_seconds`).
A dip in the other direction shorter than 10% of that delay does not restart the wait; a
longer one does. Scaling up from zero replicas happens at once.

A wait ends only on a sample that still wants the change, and the new target is the level
demand held during the wait (the lowest count wanted while waiting to go up, the highest
while waiting to go down), never just the last sample's: a low sample at the moment an
upscale wait ends must not become a scale-down that skipped the downscale delay.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from autoscaler.capacity import Fleet, replicas_for

NOISE_FRACTION = 0.10


@dataclass(frozen=True)
class ScalingConfig:
    """`per_accelerator`: the target is given per accelerator, so each decision needs the
    `Fleet` (and `target_qps_per_replica` is None)."""

    min_replicas: int
    max_replicas: int
    target_qps_per_replica: float | None = None
    target_concurrency_per_replica: float | None = None
    upscale_delay_seconds: float = 300.0
    downscale_delay_seconds: float = 1200.0
    per_accelerator: bool = False

    @property
    def autoscaling(self) -> bool:
        has_target = (
            self.target_qps_per_replica is not None
            or self.per_accelerator
            or self.target_concurrency_per_replica is not None
        )
        return has_target and self.max_replicas > self.min_replicas

    def wanted(
        self, qps: float | None, fleet: Fleet | None = None, concurrency: float | None = None
    ) -> int:
        """The count the rate needs and the count the requests in flight need: the larger."""
        by_rate = self._for_rate(qps, fleet) if qps is not None else self.min_replicas
        target = self.target_concurrency_per_replica
        if target is None or concurrency is None:
            return by_rate
        ratio = concurrency / target
        if not math.isfinite(ratio) or ratio >= self.max_replicas:
            return self.max_replicas
        return max(by_rate, self.min_replicas, math.ceil(ratio - 1e-9))

    def _for_rate(self, qps: float, fleet: Fleet | None) -> int:
        if not self.per_accelerator and self.target_qps_per_replica is None:
            return self.min_replicas
        if self.per_accelerator:
            assert fleet is not None, "a per-accelerator target needs the fleet"
            if not math.isfinite(qps):
                return self.max_replicas
            count = replicas_for(qps, fleet)
        else:
            assert self.target_qps_per_replica
            ratio = qps / self.target_qps_per_replica
            if not math.isfinite(ratio) or ratio >= self.max_replicas:
                return self.max_replicas
            count = math.ceil(ratio - 1e-9)
        return max(self.min_replicas, min(self.max_replicas, count))


@dataclass(frozen=True)
class Wait:
    """A wait for one direction: since when its condition holds, when it last held, and
    the level demand held throughout (the lowest count wanted going up, the highest going
    down)."""

    since: float
    seen: float
    level: int

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "seen": self.seen, "level": self.level}

    @classmethod
    def from_json(cls, data: Any) -> Wait | None:
        if not isinstance(data, dict) or data.get("since") is None:
            return None
        since = float(data["since"])
        return cls(since, float(data.get("seen", since)), int(data.get("level", 0)))


@dataclass(frozen=True)
class ScalerState:
    """The autoscaler's memory between ticks, round-tripped through JSON."""

    target: int | None = None
    qps: float | None = None
    wanted: int | None = None
    up: Wait | None = None
    down: Wait | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "qps": self.qps,
            "wanted": self.wanted,
            "up": self.up.to_json() if self.up else None,
            "down": self.down.to_json() if self.down else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> ScalerState:
        if not isinstance(data, dict):
            return cls()
        target = data.get("target")
        return cls(
            target=int(target) if target is not None else None,
            qps=float(data["qps"]) if data.get("qps") is not None else None,
            wanted=int(data["wanted"]) if data.get("wanted") is not None else None,
            up=Wait.from_json(data.get("up")),
            down=Wait.from_json(data.get("down")),
        )


def decide_target(
    config: ScalingConfig,
    qps: float | None,
    state: ScalerState,
    now: float,
    fleet: Fleet | None = None,
    concurrency: float | None = None,
) -> tuple[int, ScalerState]:
    """`fleet`: the replicas' capacities, needed when `config.per_accelerator`;
    `concurrency`: the requests in flight the load balancers report, averaged."""
    if not config.autoscaling:
        return config.min_replicas, ScalerState(target=config.min_replicas)
    current = config.min_replicas if state.target is None else state.target
    current = max(config.min_replicas, min(config.max_replicas, current))
    if qps is None and concurrency is None:
        return current, replace(state, target=current)
    wanted = config.wanted(qps, fleet, concurrency)
    if current == 0 and wanted > 0:
        return wanted, ScalerState(target=wanted, qps=qps)
    up = _pending(state.up, wanted, wanted > current, now, config.upscale_delay_seconds, min)
    down = _pending(state.down, wanted, wanted < current, now, config.downscale_delay_seconds, max)
    new = current
    if up is not None and wanted > current and now - up.since >= config.upscale_delay_seconds:
        new, up = max(current, up.level), None
    elif (
        down is not None and wanted < current and now - down.since >= config.downscale_delay_seconds
    ):
        new, down = min(current, down.level), None
    return new, ScalerState(target=new, qps=qps, wanted=wanted, up=up, down=down)


def _pending(
    wait: Wait | None,
    wanted: int,
    holds: bool,
    now: float,
    delay: float,
    keep: Callable[[int, int], int],
) -> Wait | None:
    """The wait for one direction after this sample (None: no wait)."""
    if holds:
        if wait is None:
            return Wait(since=now, seen=now, level=wanted)
        return Wait(since=wait.since, seen=now, level=keep(wait.level, wanted))
    if wait is not None and now - wait.seen <= NOISE_FRACTION * delay:
        return wait
    return None
