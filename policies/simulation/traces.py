"""Reading spot availability traces: one JSON file per zone, as in the SpotHedge artifact.

Each file is `{"metadata": {"gap_seconds": G}, "data": [n0, n1, ...]}` where `n_i` is how
many spot instances could be held in that zone during the i-th interval of G seconds. The
zone comes from the file name, `<zone>_<instance>.json` (`us-east-1f_v100_1.json`). A file
that breaks any of this is refused with a `TraceError` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from policies.types import Location

UNLIMITED = 1_000_000
"""Capacity used for "1 = available" in binary traces (the artifact uses a huge number)."""

CapacityMode = Literal["auto", "count", "binary"]

_AWS_ZONE = re.compile(r"^(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)(?P<letter>[a-z])$")
_GCP_ZONE = re.compile(r"^(?P<region>[a-z]+-[a-z]+\d+)-(?P<letter>[a-z])$")
_AZURE_ZONE = re.compile(r"^(?P<region>[a-z]+\d*)-(?P<letter>\d)$")


class TraceError(ValueError):
    """A trace directory or file is unusable; the message names the file and the fix."""


@dataclass(frozen=True)
class ZoneTrace:
    location: Location
    instance: str
    gap_seconds: float
    capacity: tuple[int, ...]
    path: Path

    @property
    def duration_seconds(self) -> float:
        return self.gap_seconds * len(self.capacity)


@dataclass(frozen=True)
class SpotTrace:
    name: str
    zones: tuple[ZoneTrace, ...]
    binary: bool

    @property
    def duration_seconds(self) -> float:
        """The span every zone covers (zones of one trace may differ by a few samples)."""
        return min(z.duration_seconds for z in self.zones)

    def ticks(self, tick_seconds: float) -> int:
        return int(self.duration_seconds // tick_seconds)

    def capacity_at_ticks(self, tick_seconds: float) -> np.ndarray[Any, np.dtype[np.int64]]:
        """capacity[zone, tick]: spot replicas each zone can hold during each tick."""
        count = self.ticks(tick_seconds)
        times = np.arange(count) * tick_seconds
        rows = []
        for zone in self.zones:
            values = np.asarray(zone.capacity, dtype=np.int64)
            if self.binary:
                values = np.where(values > 0, UNLIMITED, 0)
            index = np.minimum((times // zone.gap_seconds).astype(np.int64), len(values) - 1)
            rows.append(values[index])
        return np.vstack(rows)


def shared_dir() -> Path:
    """Where the shared traces and workloads live: `$SERVE_SHARED_DIR`, else the `shared/`
    folder beside the checkout (`../shared` from the repository root)."""
    configured = os.environ.get("SERVE_SHARED_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "shared"


def location_from_filename(path: Path) -> tuple[Location, str]:
    """(Location, instance label) from `<zone>_<instance>.json`; cloud told by zone syntax."""
    zone, _, instance = path.stem.partition("_")
    for cloud, pattern in (("aws", _AWS_ZONE), ("gcp", _GCP_ZONE), ("azure", _AZURE_ZONE)):
        match = pattern.match(zone)
        if match:
            return Location(cloud, match["region"], zone), instance
    raise TraceError(
        f"{path}: cannot tell the zone from the file name; name it '<zone>_<instance>.json' "
        "with an AWS (us-east-1f), GCP (us-central1-a) or Azure (eastus-1) zone"
    )


def _problem(path: Path, what: str) -> TraceError:
    return TraceError(f"{path}: {what}")


def read_zone_trace(path: Path) -> ZoneTrace:
    """One zone file, validated: gap_seconds > 0 and data a non-empty list of counts >= 0."""
    location, instance = location_from_filename(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise _problem(path, f"cannot be read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise _problem(path, f"is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(raw, dict):
        raise _problem(path, 'must be a JSON object {"metadata": {...}, "data": [...]}')
    meta = raw.get("metadata")
    gap = meta.get("gap_seconds") if isinstance(meta, dict) else None
    if isinstance(gap, bool) or not isinstance(gap, int | float) or gap <= 0:
        raise _problem(path, "metadata.gap_seconds must be a positive number of seconds")
    data = raw.get("data")
    if not isinstance(data, list) or not data:
        raise _problem(path, '"data" must be a non-empty list of spot instance counts')
    for i, value in enumerate(data):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _problem(path, f"data[{i}] = {value!r} is not a whole number >= 0")
    return ZoneTrace(location, instance, float(gap), tuple(data), path)


def load_trace(directory: Path | str, mode: CapacityMode = "auto") -> SpotTrace:
    """Every `*.json` zone file in `directory` (not recursive).

    mode "binary" reads 1 as "capacity is not the limit"; "auto" does so when every value in
    every file is 0 or 1 (the aws3 trace), "count" never.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise TraceError(f"{folder}: not a directory of zone trace files (*.json)")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise TraceError(f"{folder}: no zone trace files (*.json) in this directory")
    zones = tuple(read_zone_trace(f) for f in files)
    seen: dict[str, Path] = {}
    for zone in zones:
        if zone.location.key in seen:
            raise TraceError(
                f"{zone.path}: zone {zone.location.zone} also comes from {seen[zone.location.key]}"
            )
        seen[zone.location.key] = zone.path
    values_are_binary = all(set(z.capacity) <= {0, 1} for z in zones)
    binary = mode == "binary" or (mode == "auto" and values_are_binary)
    return SpotTrace(folder.name, zones, binary)
