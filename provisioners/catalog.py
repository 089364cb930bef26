"""The instance and price catalog: which instance types carry which accelerators, where,
and at what hourly price.

Kept as data (`provisioners/data/catalog.csv`, one row per instance type per zone) so a
price refresh is a data change, not a code change; see the README for how to refresh it.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from policies.types import Location, Offer
from provisioners.base import ResourceRequest

DEFAULT_PATH = Path(__file__).parent / "data" / "catalog.csv"
COLUMNS = (
    "cloud",
    "instance_type",
    "accelerator",
    "accelerator_count",
    "vcpus",
    "memory_gib",
    "region",
    "zone",
    "on_demand_price",
    "spot_price",
)


@dataclass(frozen=True)
class CatalogEntry:
    """One instance type in one zone. `accelerator` is '' for CPU-only types."""

    cloud: str
    instance_type: str
    accelerator: str
    accelerator_count: int
    vcpus: float
    memory_gib: float
    region: str
    zone: str
    on_demand_price: float
    spot_price: float | None

    @property
    def location(self) -> Location:
        return Location(self.cloud, self.region, self.zone)

    def offer(self) -> Offer:
        return Offer(self.location, self.on_demand_price, self.spot_price, self.instance_type)


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the file, row and column."""


class Catalog:
    """Queries over catalog entries. Pure: no I/O after construction."""

    def __init__(self, entries: Iterable[CatalogEntry]):
        self.entries: tuple[CatalogEntry, ...] = tuple(entries)

    def for_cloud(self, cloud: str) -> list[CatalogEntry]:
        return [e for e in self.entries if e.cloud == cloud]

    def matching(self, cloud: str, resources: ResourceRequest) -> list[CatalogEntry]:
        return [e for e in self.for_cloud(cloud) if _fits(e, resources)]

    def offers(self, cloud: str, resources: ResourceRequest) -> list[Offer]:
        """Offers on `cloud` that satisfy `resources`, cheapest first for the market asked."""
        found = [
            e for e in self.matching(cloud, resources) if not resources.use_spot or e.spot_price
        ]
        found.sort(key=lambda e: (_price(e, resources.use_spot), e.zone))
        return [e.offer() for e in found]


def _price(entry: CatalogEntry, spot: bool) -> float:
    if spot and entry.spot_price is not None:
        return entry.spot_price
    return entry.on_demand_price


def _fits(entry: CatalogEntry, resources: ResourceRequest) -> bool:
    if resources.instance_type and entry.instance_type != resources.instance_type:
        return False
    if resources.accelerators and not any(
        a.name.upper() == entry.accelerator.upper() and a.count == entry.accelerator_count
        for a in resources.accelerators
    ):
        return False
    if not resources.accelerators and not resources.instance_type and entry.accelerator:
        return False
    if not _at_least(resources.cpus, entry.vcpus) or not _at_least(
        resources.memory, entry.memory_gib
    ):
        return False
    return resources.allows(entry.location)


def _at_least(wanted: str | None, have: float) -> bool:
    """SkyPilot's `cpus`/`memory` syntax: '8' means exactly 8, '8+' at least 8."""
    if not wanted:
        return True
    text = str(wanted).strip()
    if text.endswith("+"):
        return have >= float(text[:-1])
    return have == float(text)


def load_catalog(path: Path = DEFAULT_PATH) -> Catalog:
    with path.open(newline="") as fh:
        reader = csv.DictReader(row for row in fh if not row.startswith("#"))
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise CatalogError(f"{path}: missing columns {sorted(missing)}")
        return Catalog(_entry(path, n, row) for n, row in enumerate(reader, start=2))


def _entry(path: Path, line: int, row: dict[str, str]) -> CatalogEntry:
    try:
        return CatalogEntry(
            cloud=row["cloud"],
            instance_type=row["instance_type"],
            accelerator=row["accelerator"],
            accelerator_count=int(row["accelerator_count"] or 0),
            vcpus=float(row["vcpus"]),
            memory_gib=float(row["memory_gib"]),
            region=row["region"],
            zone=row["zone"],
            on_demand_price=float(row["on_demand_price"]),
            spot_price=float(row["spot_price"]) if row["spot_price"] else None,
        )
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{path}:{line}: {exc}") from exc


@functools.cache
def default_catalog() -> Catalog:
    return load_catalog()
