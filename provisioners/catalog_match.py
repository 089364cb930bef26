"""Whether one catalog row satisfies a `resources` request, and how well it ranks.

Pure predicates shared by the catalog's queries and its explanations, so "what fits" is
decided in exactly one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provisioners.base import ResourceRequest

if TYPE_CHECKING:
    from provisioners.catalog import CatalogEntry


def is_accelerator(entry: CatalogEntry, name: str, count: int) -> bool:
    return name.upper() == entry.accelerator.upper() and count == entry.accelerator_count


def fits_accelerators(entry: CatalogEntry, resources: ResourceRequest) -> bool:
    """Any accelerator candidate matches; no candidates (and no instance type) means CPU only."""
    if resources.accelerators:
        return any(is_accelerator(entry, a.name, a.count) for a in resources.accelerators)
    return bool(resources.instance_type) or not entry.accelerator


def fits_size(entry: CatalogEntry, resources: ResourceRequest) -> bool:
    return at_least(resources.cpus, entry.vcpus) and at_least(resources.memory, entry.memory_gib)


def fits(entry: CatalogEntry, resources: ResourceRequest) -> bool:
    return (
        (not resources.instance_type or entry.instance_type == resources.instance_type)
        and fits_accelerators(entry, resources)
        and fits_size(entry, resources)
        and resources.allows(entry.location)
    )


def at_least(wanted: str | None, have: float) -> bool:
    """SkyPilot's `cpus`/`memory` syntax: '8' means exactly 8, '8+' at least 8."""
    if not wanted:
        return True
    text = str(wanted).strip()
    if text.endswith("+"):
        return have >= float(text[:-1])
    return have == float(text)


def place_rank(entry: CatalogEntry, resources: ResourceRequest) -> int:
    """Index of the first allowed place that holds the entry (the YAML's `ordered` rank)."""
    return next((i for i, p in enumerate(resources.places) if p.allows(entry.location)), 0)


def accelerator_rank(entry: CatalogEntry, resources: ResourceRequest) -> int:
    return next(
        (i for i, a in enumerate(resources.accelerators) if is_accelerator(entry, a.name, a.count)),
        0,
    )
