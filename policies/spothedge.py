"""SpotHedge: dynamic placement, overprovisioning and dynamic on-demand fallback.

Pure: no I/O, no clock, no randomness; the state is a frozen value that round-trips through
plain JSON. Per call, with N = target, E = num_overprovision, B = base on-demand replicas:
- spot replicas kept (launched, ready or not): S = max(0, N + E - B), as SkyPilot's
  FallbackRequestRateAutoscaler does (the base on-demand replicas stand in for spot ones);
- on-demand replicas kept: min(N, B + max(0, S - ready_spot)) with the dynamic part only
  when `dynamic_ondemand_fallback` is set, so on-demand is scaled down as spot becomes ready;
- replicas of older versions are kept only until N replicas of the latest are ready;
- spot replicas are placed by the `dynamic_fallback` placer (spread, leave preemptive
  locations) when `config.dynamic_placement`, else all in the cheapest location that takes
  them, as SkyPilot places them without `spot_placer` (`policies/placement.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies import refusals
from policies.on_demand import scale_on_demand
from policies.placement import (
    active_offers,
    place_cheapest_spot,
    place_spot,
    update_preemptive,
)
from policies.replica_sets import outdated_to_remove, pick_for_removal, split_by_version
from policies.types import Launch, PlacementConfig, Plan, PolicyInput


@dataclass(frozen=True)
class SpotHedgeState:
    """Preemptive location keys (every other offered location is active) and recent refusals."""

    preemptive: frozenset[str] = frozenset()
    spot_refused: refusals.RefusalLog = ()
    on_demand_refused: refusals.RefusalLog = ()


def spot_target(target: int, config: PlacementConfig) -> int:
    if not config.use_spot:
        return 0
    return max(0, target + config.num_overprovision - config.base_ondemand_fallback_replicas)


def on_demand_target(target: int, config: PlacementConfig, ready_spot: int) -> int:
    """On-demand replicas to keep given how many spot replicas are ready: never above N."""
    if not config.use_spot:
        return target
    wanted = config.base_ondemand_fallback_replicas
    if config.dynamic_ondemand_fallback:
        wanted += max(0, spot_target(target, config) - ready_spot)
    return max(0, min(target, wanted))


class SpotHedgePolicy:
    """The policy the controller runs for `use_spot: true` services."""

    name = "spothedge"

    def __init__(self, refusal_backoff: float = refusals.DEFAULT_BACKOFF_SECONDS) -> None:
        self.refusal_backoff = refusal_backoff

    def initial_state(self) -> SpotHedgeState:
        return SpotHedgeState()

    def plan(self, inp: PolicyInput, state: SpotHedgeState) -> tuple[Plan, SpotHedgeState]:
        state = self._observe(inp, state)
        target = max(0, inp.target)
        current, outdated = split_by_version(inp.replicas, inp.latest_version)
        spots = [r for r in current if r.spot]
        ready_spot = sum(1 for r in spots if r.ready)
        want_spot = spot_target(target, inp.config)
        want_on_demand = on_demand_target(target, inp.config, ready_spot)

        avoid_spot = refusals.recently_refused(state.spot_refused, inp.now, self.refusal_backoff)
        missing = want_spot - len(spots)
        if inp.config.dynamic_placement:
            active = active_offers(inp.offers, state.preemptive)
            new_spot = place_spot(active, (r.location for r in spots), missing, avoid_spot)
        else:
            new_spot = place_cheapest_spot(inp.offers, missing, avoid_spot)
        stop_spot = pick_for_removal(spots, len(spots) - want_spot)
        avoid_od = refusals.recently_refused(state.on_demand_refused, inp.now, self.refusal_backoff)
        new_on_demand, stop_on_demand = scale_on_demand(inp, want_on_demand, avoid_od)
        stop_old = outdated_to_remove(outdated, current, target)

        plan = Plan(
            launches=tuple(Launch(loc, spot=True) for loc in new_spot) + tuple(new_on_demand),
            terminations=stop_spot + stop_on_demand + stop_old,
            spot_target=want_spot,
            on_demand_target=want_on_demand,
            notes=self._notes(want_spot, len(spots), ready_spot, want_on_demand, state),
        )
        return plan, state

    def _observe(self, inp: PolicyInput, state: SpotHedgeState) -> SpotHedgeState:
        backoff = self.refusal_backoff
        spot_log = refusals.record_refusals(state.spot_refused, inp.events, spot=True)
        od_log = refusals.record_refusals(state.on_demand_refused, inp.events, spot=False)
        placer = inp.config.dynamic_placement
        return SpotHedgeState(
            preemptive=(
                update_preemptive(state.preemptive, inp.events, inp.offers)
                if placer
                else frozenset()
            ),
            spot_refused=refusals.prune(spot_log, inp.now, backoff),
            on_demand_refused=refusals.prune(od_log, inp.now, backoff),
        )

    @staticmethod
    def _notes(
        want_spot: int, have_spot: int, ready_spot: int, want_od: int, state: SpotHedgeState
    ) -> tuple[str, ...]:
        notes = [f"spot {have_spot}/{want_spot} launched, {ready_spot} ready"]
        notes.append(f"on-demand fallback {want_od}")
        if state.preemptive:
            notes.append("preemptive: " + ", ".join(sorted(state.preemptive)))
        return tuple(notes)

    def state_to_dict(self, state: SpotHedgeState) -> dict[str, Any]:
        return {
            "preemptive": sorted(state.preemptive),
            "spot_refused": refusals.log_to_json(state.spot_refused),
            "on_demand_refused": refusals.log_to_json(state.on_demand_refused),
        }

    def state_from_dict(self, data: dict[str, Any]) -> SpotHedgeState:
        return SpotHedgeState(
            preemptive=frozenset(str(k) for k in data.get("preemptive", ())),
            spot_refused=refusals.log_from_json(data.get("spot_refused")),
            on_demand_refused=refusals.log_from_json(data.get("on_demand_refused")),
        )
