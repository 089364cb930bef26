"""Spot-only baselines from the paper: Even Spread (AWS ASG, MArk) and Round Robin.

Pure: no I/O, no clock, no randomness. Both keep `target` spot replicas (plus
`num_overprovision` only when built with `overprovision=True`; the paper runs them
without) and never fall back to on-demand. Neither learns from preemptions: after a
capacity-refused launch they wait for the next tick (`refusal_backoff`) and then place the
replacement by their own rule again, as the paper's simulator does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policies import refusals
from policies.replica_sets import (
    outdated_to_remove,
    pick_for_removal,
    split_by_version,
    spot_offers,
)
from policies.types import Launch, Location, LocationEventKind, Offer, Plan, PolicyInput


@dataclass(frozen=True)
class SpotOnlyState:
    """`cursor`: key of the location the next round-robin launch goes to.
    `hold_until`: no spot launch before this time (set by a refused launch)."""

    cursor: str | None = None
    hold_until: float = float("-inf")


def even_spread_locations(
    offers: Sequence[Offer], occupied: Sequence[Location], count: int
) -> list[Location]:
    """Each new replica to the location with the fewest spot replicas (ties: preference)."""
    candidates = spot_offers(offers)
    if not candidates:
        return []
    taken: Counter[str] = Counter(loc.key for loc in occupied)
    chosen: list[Location] = []
    for _ in range(max(0, count)):
        best = min(candidates, key=lambda o: taken[o.location.key])
        chosen.append(best.location)
        taken[best.location.key] += 1
    return chosen


def round_robin_locations(
    offers: Sequence[Offer], cursor: str | None, count: int
) -> tuple[list[Location], str | None]:
    """`count` locations taken in turn from `cursor` on, and the cursor after them."""
    candidates = [o.location for o in spot_offers(offers)]
    if not candidates:
        return [], cursor
    keys = [loc.key for loc in candidates]
    index = keys.index(cursor) if cursor in keys else 0
    chosen: list[Location] = []
    for _ in range(max(0, count)):
        chosen.append(candidates[index])
        index = (index + 1) % len(candidates)
    return chosen, keys[index]


class _SpotOnlyPolicy:
    name = "spot_only"

    def __init__(
        self,
        overprovision: bool = False,
        refusal_backoff: float = refusals.DEFAULT_BACKOFF_SECONDS,
    ) -> None:
        self.overprovision = overprovision
        self.refusal_backoff = refusal_backoff

    def initial_state(self) -> SpotOnlyState:
        return SpotOnlyState()

    def _choose(
        self, inp: PolicyInput, occupied: list[Location], count: int, state: SpotOnlyState
    ) -> tuple[list[Location], SpotOnlyState]:
        raise NotImplementedError

    def plan(self, inp: PolicyInput, state: SpotOnlyState) -> tuple[Plan, SpotOnlyState]:
        refused_at = [
            e.at for e in inp.events if e.spot and e.kind is LocationEventKind.LAUNCH_REFUSED
        ]
        if refused_at:
            hold = max(refused_at) + self.refusal_backoff
            state = SpotOnlyState(state.cursor, max(state.hold_until, hold))
        target = max(0, inp.target)
        want = target + (inp.config.num_overprovision if self.overprovision else 0)
        current, outdated = split_by_version(inp.replicas, inp.latest_version)
        spots = [r for r in current if r.spot]
        missing = want - len(spots)
        new: list[Location] = []
        if missing > 0 and inp.now >= state.hold_until:
            new, state = self._choose(inp, [r.location for r in spots], missing, state)
        stop = pick_for_removal(spots, -missing)
        stop_on_demand = tuple(r.replica_id for r in current if not r.spot)
        plan = Plan(
            launches=tuple(Launch(loc, spot=True) for loc in new),
            terminations=stop + stop_on_demand + outdated_to_remove(outdated, current, target),
            spot_target=want,
            on_demand_target=0,
        )
        return plan, state

    def state_to_dict(self, state: SpotOnlyState) -> dict[str, Any]:
        hold = state.hold_until if state.hold_until != float("-inf") else None
        return {"cursor": state.cursor, "hold_until": hold}

    def state_from_dict(self, data: dict[str, Any]) -> SpotOnlyState:
        hold = data.get("hold_until")
        cursor = data.get("cursor")
        return SpotOnlyState(
            cursor=str(cursor) if cursor is not None else None,
            hold_until=float(hold) if hold is not None else float("-inf"),
        )


class EvenSpreadPolicy(_SpotOnlyPolicy):
    """Spot only, spread evenly over the zones; relaunches where the fewest replicas run."""

    name = "even_spread"

    def _choose(
        self, inp: PolicyInput, occupied: list[Location], count: int, state: SpotOnlyState
    ) -> tuple[list[Location], SpotOnlyState]:
        return even_spread_locations(inp.offers, occupied, count), state


class RoundRobinPolicy(_SpotOnlyPolicy):
    """Spot only; every new replica goes to the next zone in turn."""

    name = "round_robin"

    def _choose(
        self, inp: PolicyInput, occupied: list[Location], count: int, state: SpotOnlyState
    ) -> tuple[list[Location], SpotOnlyState]:
        chosen, cursor = round_robin_locations(inp.offers, state.cursor, count)
        return chosen, SpotOnlyState(cursor, state.hold_until)
