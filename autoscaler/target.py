"""Request rate -> target replica count, with SkyPilot's upscale/downscale delays.

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
from dataclasses import dataclass
from typing import Any

NOISE_FRACTION = 0.10


@dataclass(frozen=True)
class ScalingConfig:
    min_replicas: int
    max_replicas: int
    target_qps_per_replica: float | None = None
    upscale_delay_seconds: float = 300.0
    downscale_delay_seconds: float = 1200.0

    @property
    def autoscaling(self) -> bool:
        return self.target_qps_per_replica is not None and self.max_replicas > self.min_replicas

    def wanted(self, qps: float) -> int:
        assert self.target_qps_per_replica
        ratio = qps / self.target_qps_per_replica
        if not math.isfinite(ratio) or ratio >= self.max_replicas:
            return self.max_replicas
        return max(self.min_replicas, min(self.max_replicas, math.ceil(ratio - 1e-9)))


def decide_target(
    config: ScalingConfig, qps: float | None, state: dict[str, Any], now: float
) -> tuple[int, dict[str, Any]]:
    if not config.autoscaling:
        return config.min_replicas, {"target": config.min_replicas}
    current = int(state.get("target", config.min_replicas))
    current = max(config.min_replicas, min(config.max_replicas, current))
    if qps is None:
        return current, {**state, "target": current}
    wanted = config.wanted(qps)
    if current == 0 and wanted > 0:
        return wanted, {"target": wanted, "qps": qps}
    up = _pending(state, "up", wanted, wanted > current, now, config.upscale_delay_seconds, min)
    down = _pending(
        state, "down", wanted, wanted < current, now, config.downscale_delay_seconds, max
    )
    new = current
    if wanted > current and now - up["since"] >= config.upscale_delay_seconds:
        new, up = max(current, int(up.get("level", current))), {}
    elif wanted < current and now - down["since"] >= config.downscale_delay_seconds:
        new, down = min(current, int(down.get("level", current))), {}
    return new, {"target": new, "qps": qps, "wanted": wanted, "up": up, "down": down}


def _pending(
    state: dict[str, Any],
    key: str,
    wanted: int,
    holds: bool,
    now: float,
    delay: float,
    keep: Callable[[int, int], int],
) -> dict[str, Any]:
    """The wait for one direction: when it started, when its condition last held, and the
    level demand has held throughout (`keep` of the counts wanted while it held)."""
    wait = dict(state.get(key) or {})
    if holds:
        wait.setdefault("since", now)
        wait["seen"] = now
        wait["level"] = keep(int(wait.get("level", wanted)), wanted)
        return wait
    if wait.get("seen") is not None and now - wait["seen"] <= NOISE_FRACTION * delay:
        return wait
    return {}
