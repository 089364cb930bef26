"""Counting and ordering the live replicas a policy is given.

Pure: no I/O, no clock. Shared by every policy so that all of them scale down in the same
order and count "current" replicas the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from policies.types import Location, Offer, Plan, PolicyInput, ReplicaView


def removal_order(replicas: Iterable[ReplicaView]) -> list[ReplicaView]:
    """Replicas sorted so that the first ones are the cheapest to lose.

    Invariant: not-yet-ready before ready (a ready replica is serving), older versions before
    newer, on-demand before spot (a ready spot replica is the cheaper one to keep), and
    within that the most recently launched first (it has made the least progress).
    """
    return sorted(
        replicas,
        key=lambda r: (r.ready, r.version, r.spot, -r.launched_at, -r.replica_id),
    )


def pick_for_removal(replicas: Iterable[ReplicaView], count: int) -> tuple[int, ...]:
    """The ids of the first `count` replicas in `removal_order` (none if count <= 0)."""
    if count <= 0:
        return ()
    return tuple(r.replica_id for r in removal_order(replicas)[:count])


def split_by_version(
    replicas: Sequence[ReplicaView], latest_version: int
) -> tuple[list[ReplicaView], list[ReplicaView]]:
    """(replicas of the latest version or newer, replicas of older versions)."""
    current = [r for r in replicas if r.version >= latest_version]
    outdated = [r for r in replicas if r.version < latest_version]
    return current, outdated


def outdated_to_remove(
    outdated: Sequence[ReplicaView], current: Sequence[ReplicaView], wanted: int
) -> tuple[int, ...]:
    """Old-version replicas to stop during a rolling update.

    Old replicas keep serving only while the latest version has fewer than `wanted` ready
    replicas; the ones kept are the last in `removal_order` (ready ones survive longest).
    """
    ready_current = sum(1 for r in current if r.ready)
    keep = max(0, wanted - ready_current)
    return pick_for_removal(outdated, len(outdated) - keep)


def bound_surge(plan: Plan, inp: PolicyInput, surge: int) -> Plan:
    """During a rolling update (replicas of an older version still live), launch only as
    many as keep the live replicas within what the plan wants in steady state plus `surge`:
    an update never runs more than that, whatever the policy."""
    _, outdated = split_by_version(inp.replicas, inp.latest_version)
    if not outdated or not plan.launches:
        return plan
    stopping = set(plan.terminations)
    staying = sum(1 for r in inp.replicas if r.replica_id not in stopping)
    room = max(0, plan.spot_target + plan.on_demand_target + surge - staying)
    return replace(plan, launches=plan.launches[:room])


def count_in(replicas: Iterable[ReplicaView], location: Location) -> int:
    return sum(1 for r in replicas if r.location == location)


def spot_offers(offers: Iterable[Offer]) -> list[Offer]:
    """Offers that sell spot capacity, in the caller's preference order."""
    return [o for o in offers if o.spot_price is not None]


def by_spot_price(offers: Iterable[Offer]) -> list[Offer]:
    """Spot offers cheapest first; a stable sort, so ties keep the preference order."""
    return sorted(spot_offers(offers), key=lambda o: o.spot_price or 0.0)


def by_on_demand_price(offers: Iterable[Offer]) -> list[Offer]:
    """All offers cheapest on-demand first; ties keep the preference order."""
    return sorted(offers, key=lambda o: o.on_demand_price)
