"""The simulated spot market of the local provisioner: zones, prices and spot capacity.

State lives in one JSON file under the local provisioner's directory so that the
controller, the CLI (`serve market ...`) and tests all see the same market. Capacity None
means unlimited. Writes go through a temp file and rename, so readers never see half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

DEFAULT_ZONES = ("local-a", "local-b", "local-c")
REGION = "local"


@dataclass(frozen=True)
class ZoneMarket:
    zone: str
    spot_capacity: int | None = None
    spot_price: float = 1.0
    on_demand_price: float = 3.0


@dataclass(frozen=True)
class MarketState:
    zones: tuple[ZoneMarket, ...] = field(
        default_factory=lambda: tuple(ZoneMarket(z) for z in DEFAULT_ZONES)
    )

    def zone(self, name: str) -> ZoneMarket | None:
        return next((z for z in self.zones if z.zone == name), None)

    def with_zone(self, updated: ZoneMarket) -> MarketState:
        zones = [updated if z.zone == updated.zone else z for z in self.zones]
        if self.zone(updated.zone) is None:
            zones.append(updated)
        return MarketState(tuple(zones))


class MarketFile:
    def __init__(self, path: Path):
        self.path = path

    def read(self) -> MarketState:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return MarketState()
        return MarketState(tuple(ZoneMarket(**z) for z in raw["zones"]))

    def write(self, state: MarketState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"zones": [asdict(z) for z in state.zones]}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".market-")
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
        os.replace(tmp, self.path)

    def set_zone(self, zone: str, **changes: object) -> MarketState:
        state = self.read()
        current = state.zone(zone) or ZoneMarket(zone)
        new = state.with_zone(replace(current, **changes))  # type: ignore[arg-type]
        self.write(new)
        return new
