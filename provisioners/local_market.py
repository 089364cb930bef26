"""The simulated spot market of the local provisioner: zones, prices and spot capacity.

State lives in one JSON file under the local provisioner's directory so that the
controller, the CLI (through the API) and tests all see the same market. Capacity None
means unlimited. A driver (a trace replayed faster than real time, or a seeded random
model) may move capacities over time; by hand is the default. Writes go through a temp file
and rename, so readers never see half a file.
"""

from __future__ import annotations

import json
import os
import string
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_ZONES = ("local-a", "local-b", "local-c")
REGION = "local"


@dataclass(frozen=True)
class ZoneMarket:
    """`boot_seconds`: how long a new instance in the zone stays PENDING before it counts
    as running (a VM booting; a huge value is a VM stuck creating). `api_delay_seconds`:
    how long each launch and terminate call in the zone takes to answer (a slow or hung
    cloud API). `notice_seconds`: how long before taking a spot instance the zone warns it
    (0: no warning; the driver's `notice_seconds` applies then)."""

    zone: str
    spot_capacity: int | None = None
    spot_price: float = 1.0
    on_demand_price: float = 3.0
    boot_seconds: float = 0.0
    api_delay_seconds: float = 0.0
    notice_seconds: float = 0.0


@dataclass(frozen=True)
class MarketState:
    zones: tuple[ZoneMarket, ...] = field(
        default_factory=lambda: tuple(ZoneMarket(z) for z in DEFAULT_ZONES)
    )
    driver: dict[str, Any] = field(default_factory=lambda: {"mode": "manual"})

    def zone(self, name: str) -> ZoneMarket | None:
        return next((z for z in self.zones if z.zone == name), None)

    def notice_seconds(self, zone: ZoneMarket) -> float:
        """The zone's warning ahead of a preemption, else the driver's."""
        return zone.notice_seconds or float(self.driver.get("notice_seconds") or 0.0)

    def with_zone(self, updated: ZoneMarket) -> MarketState:
        zones = [updated if z.zone == updated.zone else z for z in self.zones]
        if self.zone(updated.zone) is None:
            zones.append(updated)
        return replace(self, zones=tuple(zones))

    def with_zone_count(self, count: int) -> MarketState:
        """At least `count` zones, new ones named local-d, local-e, ... like the first."""
        state = self
        for letter in string.ascii_lowercase[len(self.zones) : count]:
            state = state.with_zone(ZoneMarket(f"local-{letter}"))
        return state

    def as_json(self) -> dict[str, Any]:
        return {"zones": [asdict(z) for z in self.zones], "driver": self.driver}


class MarketFile:
    def __init__(self, path: Path):
        self.path = path

    def read(self) -> MarketState:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return MarketState()
        return MarketState(
            tuple(ZoneMarket(**z) for z in raw["zones"]), raw.get("driver") or {"mode": "manual"}
        )

    def write(self, state: MarketState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".market-")
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(state.as_json(), indent=2))
        os.replace(tmp, self.path)

    def set_zone(self, zone: str, **changes: Any) -> MarketState:
        state = self.read()
        current = state.zone(zone) or ZoneMarket(zone)
        new = state.with_zone(replace(current, **changes))
        self.write(new)
        return new
