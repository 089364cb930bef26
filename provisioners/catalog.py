"""The instance and price catalog: which instance types carry which accelerators, where,
and at what hourly price.

Kept as data (`provisioners/data/catalog.csv`, one row per instance type per zone) so a
price refresh is a data change, not a code change; see the README for how to refresh it.
Invariant: one (cloud, instance_type) always means the same accelerators, vCPUs and memory,
so an adapter can read an offer's instance type back into its hardware with `instance_spec`.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from policies.types import Location, Offer
from provisioners.base import ResourceRequest
from provisioners.catalog_explain import explain
from provisioners.catalog_match import accelerator_rank, fits, place_rank
from provisioners.errors import InvalidRequest

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

    @property
    def accelerator_label(self) -> str:
        return f"{self.accelerator}:{self.accelerator_count}" if self.accelerator else "CPU"

    def offer(self) -> Offer:
        return Offer(self.location, self.on_demand_price, self.spot_price, self.instance_type)

    def price(self, spot: bool) -> float:
        if spot and self.spot_price is not None:
            return self.spot_price
        return self.on_demand_price


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the file, row and column."""


class NotOffered(InvalidRequest):
    """No location satisfies the resources; the message says what is available instead."""


class Catalog:
    """Queries over catalog entries. Pure: no I/O after construction."""

    def __init__(self, entries: Iterable[CatalogEntry]):
        self.entries: tuple[CatalogEntry, ...] = tuple(entries)

    def for_cloud(self, cloud: str) -> list[CatalogEntry]:
        return [e for e in self.entries if e.cloud == cloud]

    def matching(self, cloud: str, resources: ResourceRequest) -> list[CatalogEntry]:
        return [e for e in self.for_cloud(cloud) if fits(e, resources)]

    def candidates(
        self, resources: ResourceRequest, clouds: Iterable[str] | None = None
    ) -> list[Offer]:
        """Every offer satisfying `resources` on `clouds` (all if None), best first.

        Best means cheapest for the market asked (spot price when `use_spot`), unless
        `resources.ordered`: then the YAML's order of `places` decides first, then the order
        of the accelerator candidates, and price only breaks ties within one of them.
        """
        allowed = set(clouds) if clouds is not None else None
        found = [
            e
            for e in self.entries
            if (allowed is None or e.cloud in allowed)
            and fits(e, resources)
            and (not resources.use_spot or e.spot_price is not None)
        ]
        found.sort(key=lambda e: _rank(e, resources))
        return [e.offer() for e in found]

    def offers(self, cloud: str, resources: ResourceRequest) -> list[Offer]:
        """Offers on `cloud` that satisfy `resources`, in `candidates` order."""
        return self.candidates(resources, clouds=(cloud,))

    def require(
        self, resources: ResourceRequest, clouds: Iterable[str] | None = None
    ) -> list[Offer]:
        """`candidates`, or `NotOffered` whose message lists what is available instead."""
        clouds = tuple(clouds) if clouds is not None else None
        found = self.candidates(resources, clouds)
        if not found:
            raise NotOffered(explain(self.entries, resources, clouds))
        return found

    def describe(self, resources: ResourceRequest, clouds: Iterable[str] | None = None) -> str:
        """A human answer to "where can this run?", naming alternatives when nowhere."""
        return explain(self.entries, resources, tuple(clouds) if clouds is not None else None)

    def instance_spec(self, cloud: str, instance_type: str) -> CatalogEntry | None:
        """Any row of that instance type (its hardware is the same in every zone)."""
        return next(
            (e for e in self.entries if e.cloud == cloud and e.instance_type == instance_type),
            None,
        )

    def regions(self, cloud: str) -> list[str]:
        return sorted({e.region for e in self.for_cloud(cloud)})


def _rank(entry: CatalogEntry, resources: ResourceRequest) -> tuple[object, ...]:
    tie = (entry.cloud, entry.region, entry.zone, entry.instance_type)
    price = entry.price(resources.use_spot)
    if not resources.ordered:
        return (price, *tie)
    return (place_rank(entry, resources), accelerator_rank(entry, resources), price, *tie)


def load_catalog(path: Path = DEFAULT_PATH) -> Catalog:
    with path.open(newline="") as fh:
        numbered = list(_data_lines(fh))
    reader = csv.DictReader(line for _, line in numbered)
    missing = set(COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise CatalogError(f"{path}: missing columns {sorted(missing)}")
    line_numbers = [n for n, _ in numbered[1:]]
    return Catalog(_entry(path, n, row) for n, row in zip(line_numbers, reader, strict=False))


def _data_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-comment, non-blank line: errors cite file lines."""
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.startswith("#"):
            yield number, line


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
