"""SpotHedge's dynamic placement: which locations are active and where the next spot
replica goes (EuroSys'25, Section 3; SkyPilot's `dynamic_fallback` spot placer), and where
spot replicas go without a placer.

Pure: no I/O, no clock, no randomness. Invariants:
- every location starts active; a preemption or a capacity-refused spot launch makes it
  preemptive; a spot replica becoming ready there makes it active again;
- whenever fewer than 2 of the offered spot locations are active, all become active;
- the next spot replica goes to the cheapest active location hosting none of the current
  spot replicas, else to the cheapest active location (ties: the caller's preference order);
- without a placer (`place_cheapest_spot`) every spot replica goes to the cheapest location
  that has not just refused one, wherever the others run and whatever preempted there: what
  SkyPilot does when `spot_placer` is unset (sky/serve/replica_managers.py launches with the
  task's resources and `retry_until_up`, so its optimizer picks the cheapest location and
  fails over only when a launch is refused; sky/serve/spot_placer.py is not consulted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from policies.replica_sets import by_spot_price, spot_offers
from policies.types import Location, LocationEvent, LocationEventKind, Offer

MIN_ACTIVE_LOCATIONS = 2


def update_preemptive(
    preemptive: frozenset[str], events: Iterable[LocationEvent], offers: Sequence[Offer]
) -> frozenset[str]:
    """The preemptive set after `events` (spot events only), in order."""
    offered = {o.location.key for o in spot_offers(offers)}
    current = set(preemptive)
    for event in events:
        if not event.spot:
            continue
        key = event.location.key
        if event.kind in (LocationEventKind.PREEMPTED, LocationEventKind.LAUNCH_REFUSED):
            current.add(key)
            if len(offered - current) < MIN_ACTIVE_LOCATIONS:
                current.clear()
        elif event.kind is LocationEventKind.READY:
            current.discard(key)
    if len(offered - current) < MIN_ACTIVE_LOCATIONS:
        current.clear()
    return frozenset(current)


def active_offers(offers: Sequence[Offer], preemptive: frozenset[str]) -> list[Offer]:
    """Active spot offers, cheapest first."""
    return [o for o in by_spot_price(offers) if o.location.key not in preemptive]


def next_spot_location(
    active: Sequence[Offer], occupied: Counter[str], avoid: frozenset[str]
) -> Location | None:
    """Where the next spot replica goes, or None if every active location just refused."""
    candidates = [o for o in active if o.location.key not in avoid]
    if not candidates:
        return None
    unused = [o for o in candidates if occupied[o.location.key] == 0]
    return (unused or candidates)[0].location


def place_spot(
    active: Sequence[Offer], occupied: Iterable[Location], count: int, avoid: frozenset[str]
) -> list[Location]:
    """Locations for `count` new spot replicas, each placed as if the previous ones ran."""
    taken: Counter[str] = Counter(loc.key for loc in occupied)
    chosen: list[Location] = []
    for _ in range(max(0, count)):
        location = next_spot_location(active, taken, avoid)
        if location is None:
            break
        chosen.append(location)
        taken[location.key] += 1
    return chosen


def place_cheapest_spot(
    offers: Sequence[Offer], count: int, avoid: frozenset[str]
) -> list[Location]:
    """`count` spot replicas in the cheapest location that has not just refused one (none
    when every location did: the next tick tries again, as a launch retried until up does)."""
    for offer in by_spot_price(offers):
        if offer.location.key not in avoid:
            return [offer.location] * max(0, count)
    return []
