"""Answers to "where can these resources run?" in words an operator can act on.

`explain` narrows the catalog one constraint at a time (instance type, accelerator name,
accelerator count, cpus/memory, allowed places, usable clouds, spot) and, at the first
constraint that leaves nothing, says what the catalog offers instead. Pure: no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from provisioners.base import LocationFilter, ResourceRequest
from provisioners.catalog_match import fits_accelerators, fits_size, is_accelerator

if TYPE_CHECKING:
    from provisioners.catalog import CatalogEntry

Entries = Sequence["CatalogEntry"]


def explain(entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None) -> str:
    """What is available for `resources`; `clouds` are the usable clouds (None: all)."""
    steps: tuple[Callable[[Entries, ResourceRequest, Sequence[str] | None], str | None], ...] = (
        _unknown_instance_type,
        _unknown_accelerator,
        _unknown_count,
        _too_small,
        _outside_places,
        _unusable_clouds,
        _no_spot,
    )
    for step in steps:
        problem = step(entries, resources, clouds)
        if problem:
            return problem
    return _available(entries, resources, clouds)


def wanted_label(resources: ResourceRequest) -> str:
    if resources.accelerators:
        return " or ".join(str(a) for a in resources.accelerators)
    return resources.instance_type or "a CPU-only instance"


def _unknown_instance_type(
    entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None
) -> str | None:
    name = resources.instance_type
    if not name or any(e.instance_type == name for e in entries):
        return None
    known = sorted({e.instance_type for e in entries})
    return f"instance_type {name!r} is not in the catalog.{_did_you_mean(name, known)}"


def _unknown_accelerator(
    entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None
) -> str | None:
    known = sorted({e.accelerator for e in entries if e.accelerator})
    upper = {k.upper() for k in known}
    unknown = [a.name for a in resources.accelerators if a.name.upper() not in upper]
    if not unknown or len(unknown) < len(resources.accelerators):
        return None
    first = unknown[0]
    return (
        f"No cloud offers accelerator {first!r}. Known accelerators: {', '.join(known)}."
        f"{_did_you_mean(first, known)}"
    )


def _unknown_count(
    entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None
) -> str | None:
    if not resources.accelerators or any(
        is_accelerator(e, a.name, a.count) for e in entries for a in resources.accelerators
    ):
        return None
    lines = []
    for acc in resources.accelerators:
        same = [e for e in entries if e.accelerator.upper() == acc.name.upper()]
        if not same:
            continue
        name = same[0].accelerator
        per_cloud = "; ".join(
            f"{cloud}: {_sizes(name, [e for e in same if e.cloud == cloud])}"
            for cloud in _clouds_of(same)
        )
        lines.append(f"{acc} is not offered; {name} comes as {_sizes(name, same)} ({per_cloud}).")
    return " ".join(lines)


def _sizes(name: str, entries: Iterable[CatalogEntry]) -> str:
    return ", ".join(f"{name}:{n}" for n in sorted({e.accelerator_count for e in entries}))


def _too_small(
    entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None
) -> str | None:
    hardware = _hardware(entries, resources)
    if not hardware or any(fits_size(e, resources) for e in hardware):
        return None
    asked = ", ".join(
        f"{k}={v}" for k, v in (("cpus", resources.cpus), ("memory", resources.memory)) if v
    )
    shapes = sorted(
        {f"{e.cloud} {e.instance_type} ({e.vcpus:g} vCPU, {e.memory_gib:g} GiB)" for e in hardware}
    )
    return (
        f"No instance with {wanted_label(resources)} has {asked}. "
        f"Available shapes: {'; '.join(shapes)}."
    )


def _outside_places(
    entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None
) -> str | None:
    sized = [e for e in _hardware(entries, resources) if fits_size(e, resources)]
    if not sized:
        return f"The catalog has no instance type for {wanted_label(resources)}."
    if any(resources.allows(e.location) for e in sized):
        return None
    places = ", ".join(_place_label(p) for p in resources.places)
    return (
        f"{wanted_label(resources)} is not offered in {places}; it is offered in {_where(sized)}."
    )


def _unusable_clouds(
    entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None
) -> str | None:
    placed = _placed(entries, resources)
    if clouds is None or any(e.cloud in clouds for e in placed):
        return None
    usable = ", ".join(sorted(clouds)) or "none"
    offering = _clouds_of(placed)
    verb = "has" if len(offering) == 1 else "have"
    return (
        f"{wanted_label(resources)} is offered only on {', '.join(offering)}, "
        f"which {verb} no usable credentials here (usable clouds: {usable}). "
        "Run `serve check` to see what each cloud needs."
    )


def _no_spot(
    entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None
) -> str | None:
    usable = _usable(entries, resources, clouds)
    if not resources.use_spot or any(e.spot_price is not None for e in usable):
        return None
    return (
        f"{wanted_label(resources)} has no spot offer in the allowed places "
        f"({_where(usable)} sell it on demand only); set `use_spot: false` or allow more places."
    )


def _available(entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None) -> str:
    usable = [
        e
        for e in _usable(entries, resources, clouds)
        if not resources.use_spot or e.spot_price is not None
    ]
    best = min(usable, key=lambda e: e.price(resources.use_spot))
    market = "spot" if resources.use_spot else "on-demand"
    return (
        f"{wanted_label(resources)} is offered in {len(usable)} zones: {_where(usable)}. "
        f"Cheapest: {best.instance_type} at {best.location} for "
        f"${best.price(resources.use_spot):.4g}/h {market}."
    )


def _hardware(entries: Entries, resources: ResourceRequest) -> list[CatalogEntry]:
    return [
        e
        for e in entries
        if (not resources.instance_type or e.instance_type == resources.instance_type)
        and fits_accelerators(e, resources)
    ]


def _placed(entries: Entries, resources: ResourceRequest) -> list[CatalogEntry]:
    return [
        e
        for e in _hardware(entries, resources)
        if fits_size(e, resources) and resources.allows(e.location)
    ]


def _usable(
    entries: Entries, resources: ResourceRequest, clouds: Sequence[str] | None
) -> list[CatalogEntry]:
    return [e for e in _placed(entries, resources) if clouds is None or e.cloud in clouds]


def _where(entries: Iterable[CatalogEntry]) -> str:
    """'aws: us-east-1, us-west-2; gcp: us-central1', cheapest cloud first."""
    entries = list(entries)
    return "; ".join(
        f"{cloud}: {', '.join(sorted({e.region for e in entries if e.cloud == cloud}))}"
        for cloud in _clouds_of(entries)
    )


def _clouds_of(entries: Iterable[CatalogEntry]) -> list[str]:
    cheapest: dict[str, float] = {}
    for e in entries:
        cheapest[e.cloud] = min(cheapest.get(e.cloud, e.on_demand_price), e.on_demand_price)
    return sorted(cheapest, key=lambda c: (cheapest[c], c))


def _place_label(place: LocationFilter) -> str:
    parts = [p for p in (place.cloud, place.region, place.zone) if p]
    return "/".join(parts) or "anywhere"


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    by_upper = {k.upper(): k for k in known}
    close = difflib.get_close_matches(name.upper(), list(by_upper), n=1, cutoff=0.6)
    return f" Did you mean {by_upper[close[0]]!r}?" if close else ""
