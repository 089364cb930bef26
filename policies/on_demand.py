"""On-demand only: the baseline every cost is measured against, and the controller's policy
when a service does not ask for spot.

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policies import refusals
from policies.replica_sets import (
    by_on_demand_price,
    outdated_to_remove,
    pick_for_removal,
    split_by_version,
)
from policies.types import Launch, Offer, Plan, PolicyInput


def place_on_demand(offers: Sequence[Offer], count: int, avoid: frozenset[str]) -> list[Launch]:
    """`count` on-demand launches in the cheapest location that has not just refused one.

    Returns fewer (none) when every location refused within the backoff: the next tick
    tries again.
    """
    for offer in by_on_demand_price(offers):
        if offer.location.key not in avoid:
            return [Launch(offer.location, spot=False) for _ in range(max(0, count))]
    return []


def scale_on_demand(
    inp: PolicyInput, target: int, avoid: frozenset[str]
) -> tuple[list[Launch], tuple[int, ...]]:
    """Launches and terminations that bring current on-demand replicas to `target`."""
    current, _ = split_by_version(inp.replicas, inp.latest_version)
    on_demand = [r for r in current if not r.spot]
    missing = target - len(on_demand)
    if missing > 0:
        return place_on_demand(inp.offers, missing, avoid), ()
    return [], pick_for_removal(on_demand, -missing)


@dataclass(frozen=True)
class OnDemandState:
    refused: refusals.RefusalLog = ()


class OnDemandPolicy:
    """Keeps exactly `target` on-demand replicas; stops every spot replica it finds."""

    name = "on_demand"

    def __init__(self, refusal_backoff: float = refusals.DEFAULT_BACKOFF_SECONDS) -> None:
        self.refusal_backoff = refusal_backoff

    def initial_state(self) -> OnDemandState:
        return OnDemandState()

    def plan(self, inp: PolicyInput, state: OnDemandState) -> tuple[Plan, OnDemandState]:
        log = refusals.record_refusals(state.refused, inp.events, spot=False)
        avoid = refusals.recently_refused(log, inp.now, self.refusal_backoff)
        target = max(0, inp.target)
        launches, stop_on_demand = scale_on_demand(inp, target, avoid)
        current, outdated = split_by_version(inp.replicas, inp.latest_version)
        stop_spot = tuple(r.replica_id for r in current if r.spot)
        stop_old = outdated_to_remove(outdated, current, target)
        plan = Plan(
            launches=tuple(launches),
            terminations=stop_on_demand + stop_spot + stop_old,
            spot_target=0,
            on_demand_target=target,
        )
        return plan, OnDemandState(refusals.prune(log, inp.now, self.refusal_backoff))

    def state_to_dict(self, state: OnDemandState) -> dict[str, Any]:
        return {"on_demand_refused": refusals.log_to_json(state.refused)}

    def state_from_dict(self, data: dict[str, Any]) -> OnDemandState:
        return OnDemandState(refusals.log_from_json(data.get("on_demand_refused")))
