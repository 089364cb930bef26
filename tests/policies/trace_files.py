"""Writing small hand-made trace directories in the artifact's format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from policies.simulation.traces import load_trace
from policies.types import Offer


def write_trace(directory: Path, zones: dict[str, list[int]], gap: float = 30) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for zone, data in zones.items():
        body = {"metadata": {"gap_seconds": gap}, "data": data}
        (directory / f"{zone}_v100_1.json").write_text(json.dumps(body))
    return directory


def capacity_and_offers(
    directory: Path, tick: float = 30.0
) -> tuple[np.ndarray, tuple[Offer, ...]]:
    trace = load_trace(directory)
    offers = tuple(Offer(z.location, 3.0, 1.0) for z in trace.zones)
    return trace.capacity_at_ticks(tick), offers
