"""Where `adaptive_hedge` puts spot replicas, and which ones it moves or stops.

Pure: no I/O, no clock, no randomness. Invariants:
- a zone is calm while its risk (`policies/zone_risk.py`) is below `avoid_risk`; new spot
  replicas go to calm zones only, unless fewer than 2 are calm, then to any zone (so a
  market that is rough everywhere still gets spread, as SpotHedge resets its active set);
- each new replica goes to the usable zone holding the fewest spot replicas, ties broken by
  spot price, then risk, then the caller's preference order;
- the spread wants fixing when one zone holds more than half of the spot replicas and 2 or
  more than a calm zone (after a zone came back, all replicas can sit in one zone); the
  newest ready replica of the fullest zone is then the one to move;
- spot replicas above the target are stopped not-ready first, then from the fullest zone,
  then from the riskiest zone, newest first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from policies.replica_sets import spot_offers
from policies.types import Location, Offer, ReplicaView

MIN_USABLE_ZONES = 2


def usable_offers(
    offers: Sequence[Offer], risk: Mapping[str, float], avoid_risk: float
) -> list[Offer]:
    """Spot offers new replicas may go to: the calm ones, or all when fewer than 2 are calm."""
    spot = spot_offers(offers)
    calm = [o for o in spot if risk.get(o.location.key, 0.0) < avoid_risk]
    return calm if len(calm) >= MIN_USABLE_ZONES else spot


def place_spread(
    usable: Sequence[Offer],
    occupied: Iterable[Location],
    count: int,
    risk: Mapping[str, float],
    avoid: frozenset[str],
) -> list[Location]:
    """Locations for `count` new spot replicas, each placed as if the previous ones ran."""
    taken: Counter[str] = Counter(loc.key for loc in occupied)
    candidates = [o for o in usable if o.location.key not in avoid]
    rank = {o.location.key: i for i, o in enumerate(candidates)}
    chosen: list[Location] = []
    for _ in range(max(0, count) if candidates else 0):
        best = min(
            candidates,
            key=lambda o: (
                taken[o.location.key],
                o.spot_price or 0.0,
                risk.get(o.location.key, 0.0),
                rank[o.location.key],
            ),
        )
        chosen.append(best.location)
        taken[best.location.key] += 1
    return chosen


def replica_to_move(
    spots: Sequence[ReplicaView], usable: Sequence[Offer], avoid: frozenset[str]
) -> ReplicaView | None:
    """The replica to move for a balanced spread, or None when the spread is balanced (or
    no zone that could take it is free to)."""
    counts: Counter[str] = Counter(r.location.key for r in spots)
    targets = [o.location.key for o in usable if o.location.key not in avoid]
    if not targets:
        return None
    emptiest = min(counts[key] for key in targets)
    fullest_key = max(counts, key=lambda k: (counts[k], k), default=None)
    if fullest_key is None or counts[fullest_key] - emptiest < 2:
        return None
    if 2 * counts[fullest_key] <= len(spots):
        return None  # at most half in one zone: losing it leaves the other half serving
    ready = [r for r in spots if r.location.key == fullest_key and r.ready]
    return max(ready, key=lambda r: (r.launched_at, r.replica_id), default=None)


def spot_removal(
    spots: Sequence[ReplicaView], count: int, risk: Mapping[str, float]
) -> tuple[int, ...]:
    """Ids of the `count` spot replicas to stop first (see the module docstring)."""
    if count <= 0:
        return ()
    left = list(spots)
    chosen: list[int] = []
    for _ in range(min(count, len(left))):
        counts: Counter[str] = Counter(r.location.key for r in left)
        victim = min(
            left,
            key=lambda r: (
                r.ready,
                -counts[r.location.key],
                -risk.get(r.location.key, 0.0),
                -r.launched_at,
                -r.replica_id,
            ),
        )
        chosen.append(victim.replica_id)
        left.remove(victim)
    return tuple(chosen)
