"""Static mix: an AWS Auto Scaling group with a mixed-instances policy.

Pure: no I/O, no clock, no randomness. Of `target` replicas, `on_demand_base` are on-demand,
and of the rest `on_demand_percentage` percent (rounded up, as ASG does) are on-demand too;
the remaining spot replicas are spread evenly over the zones, with no fallback when they are
preempted.
"""

from __future__ import annotations

import math
from typing import Any

from policies import refusals
from policies.on_demand import scale_on_demand
from policies.replica_sets import outdated_to_remove, pick_for_removal, split_by_version
from policies.spot_only import SpotOnlyState, even_spread_locations
from policies.types import Launch, LocationEventKind, Plan, PolicyInput


def static_split(target: int, base: int, percentage: float) -> tuple[int, int]:
    """(on-demand, spot) counts for `target` replicas."""
    base = min(max(0, base), target)
    above = target - base
    on_demand = base + math.ceil(above * percentage / 100.0 - 1e-9)
    on_demand = min(target, on_demand)
    return on_demand, target - on_demand


class StaticMixPolicy:
    name = "static_mix"

    def __init__(
        self,
        on_demand_base: int | None = None,
        on_demand_percentage: float = 0.0,
        refusal_backoff: float = refusals.DEFAULT_BACKOFF_SECONDS,
    ) -> None:
        if not 0.0 <= on_demand_percentage <= 100.0:
            raise ValueError(
                f"static_mix on_demand_percentage={on_demand_percentage} must be in 0..100"
            )
        if on_demand_base is not None and on_demand_base < 0:
            raise ValueError(f"static_mix on_demand_base={on_demand_base} must be >= 0")
        self.on_demand_base = on_demand_base
        self.on_demand_percentage = on_demand_percentage
        self.refusal_backoff = refusal_backoff

    def initial_state(self) -> SpotOnlyState:
        return SpotOnlyState()

    def plan(self, inp: PolicyInput, state: SpotOnlyState) -> tuple[Plan, SpotOnlyState]:
        refused = [
            e.at for e in inp.events if e.spot and e.kind is LocationEventKind.LAUNCH_REFUSED
        ]
        if refused:
            state = SpotOnlyState(None, max(state.hold_until, max(refused) + self.refusal_backoff))
        base = self.on_demand_base
        if base is None:
            base = inp.config.base_ondemand_fallback_replicas
        target = max(0, inp.target)
        want_od, want_spot = static_split(target, base, self.on_demand_percentage)
        current, outdated = split_by_version(inp.replicas, inp.latest_version)
        spots = [r for r in current if r.spot]
        missing = want_spot - len(spots)
        new_spot = []
        if missing > 0 and inp.now >= state.hold_until:
            new_spot = even_spread_locations(inp.offers, [r.location for r in spots], missing)
        od_refused = tuple(
            (e.location.key, e.at)
            for e in inp.events
            if not e.spot and e.kind is LocationEventKind.LAUNCH_REFUSED
        )
        avoid_od = refusals.recently_refused(od_refused, inp.now, self.refusal_backoff)
        new_od, stop_od = scale_on_demand(inp, want_od, avoid_od)
        plan = Plan(
            launches=tuple(Launch(loc, spot=True) for loc in new_spot) + tuple(new_od),
            terminations=pick_for_removal(spots, -missing)
            + stop_od
            + outdated_to_remove(outdated, current, target),
            spot_target=want_spot,
            on_demand_target=want_od,
        )
        return plan, state

    def state_to_dict(self, state: SpotOnlyState) -> dict[str, Any]:
        hold = state.hold_until if state.hold_until != float("-inf") else None
        return {"hold_until": hold}

    def state_from_dict(self, data: dict[str, Any]) -> SpotOnlyState:
        hold = data.get("hold_until")
        return SpotOnlyState(None, float(hold) if hold is not None else float("-inf"))
