"""adaptive_hedge: SpotHedge with the hedge sized from a decaying preemption risk.

Pure: no I/O, no clock, no randomness; the state is a frozen value that round-trips through
plain JSON. Per call, with N = target, B = base on-demand replicas, E = num_overprovision:
- risk R = recent preemptions over all zones, each halving every `half_life` seconds
  (`policies/zone_risk.py`), plus a prior of one preemption at the first plan (a policy
  that has seen nothing has not seen a calm market either);
- extra spot replicas K = 0 while R < `calm_risk`, max(1, E) while R < `volatile_risk`,
  max(1, E) + 1 above (off by default): the hedge is not paid for in long calm periods;
- spot replicas kept S = max(0, N + K - B), spread over calm zones, zone risk remembered
  with a longer half-life (`zone_half_life`: a zone that failed hours ago tends to fail again);
  optionally (`rebalance`, off by default: it churned on aws1), when more than half sit in
  one zone (`policies/risk_placement.py`), one extra spot replica is launched in a clean zone
  and, once it is ready, one of the fullest zone is stopped (make before break);
- on-demand fallback: B + max(0, N + K_od - ready_spot) with `dynamic_ondemand_fallback`,
  where K_od = K while R >= `cover_risk` and the last preemption anywhere is less than
  `cover_seconds` old, else 0 (a rough market's next loss tends to follow soon: on-demand
  stands in for the hedge spot cannot get, and only for a while); optionally, while the last
  preemption is less than `stable_seconds` old, the on-demand replicas already running are
  kept; never above N;
- a zone is one failure domain (`hot_risk` = inf turns this off): while a zone is hot
  (recent preemptions, halving every `hot_half_life`, at `hot_risk` or more), on-demand is
  kept so that losing every ready spot replica of the hot zone holding most of them still
  leaves N ready (`target - (ready_spot - exposed)`): a zone that just fell from 4 to 2 tends
  to fall to 0 next; with `diversify`, as many extra spot replicas are launched in zones that
  are not hot (whichever is not needed once ready is stopped); with `standby_drops_hedge`,
  the hedge is not paid for while that standby runs; `standby_spare` = 1 covers all but one
  of the hot zone's ready spot replicas;
- with an availability target (the YAML's `availability_target`, off by default): while the
  service's recent outage is above what the target allows (`policies/outage_budget.py`), it
  runs on N on-demand replicas only, each spot replica stopped once an on-demand one is ready
  in its stead; when the outage has faded to half the budget, spot comes back as SpotHedge's
  fallback does (on-demand stays until the spot replicas are ready). No foresight: it buys
  availability on a market that keeps taking the zone everything runs in;
- replicas of older versions are kept only until N replicas of the latest are ready.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from policies import outage_budget, refusals, zone_risk
from policies.on_demand import scale_on_demand
from policies.replica_sets import outdated_to_remove, split_by_version
from policies.risk_placement import place_spread, replica_to_move, spot_removal, usable_offers
from policies.types import Launch, LocationEventKind, PlacementConfig, Plan, PolicyInput


@dataclass(frozen=True)
class AdaptiveHedgeState:
    """Per-zone risk (long memory), the market's recent preemptions (short memory, with a
    prior of one preemption at `started_at`), the last preemption anywhere, recent refusals."""

    risk: zone_risk.RiskTable = ()
    market: zone_risk.RiskTable = ()
    hot: zone_risk.RiskTable = ()
    started_at: float | None = None
    last_preempted_at: float | None = None
    spot_refused: refusals.RefusalLog = ()
    on_demand_refused: refusals.RefusalLog = ()
    budget: outage_budget.OutageBudget = field(default_factory=outage_budget.OutageBudget)


@dataclass(frozen=True)
class AdaptiveHedgeParams:
    """Chosen on the aws1 and gcp1 traces only (benchmarks/policy/README.md): the hedge is
    dropped after about 20 quiet hours, on-demand covers the hedge for 30 minutes after a
    preemption in a rough market, and a hot zone is one failure domain."""

    half_life: float = 4 * 3600.0
    zone_half_life: float = 12 * 3600.0
    calm_risk: float = 0.1
    volatile_risk: float = math.inf
    stable_seconds: float = 0.0
    avoid_risk: float = 0.5
    refusal_weight: float = 0.25
    cover_risk: float = 2.0
    # On-demand covers the hedge only this long after the last preemption anywhere.
    cover_seconds: float = 1800.0
    rebalance_risk: float = 0.1
    rebalance: bool = False
    # Zone-as-failure-domain standby (inf: off).
    hot_risk: float = 0.5
    hot_half_life: float = 300.0
    diversify: bool = True
    standby_drops_hedge: bool = False
    # The standby leaves this many of the hot zone's ready spot replicas uncovered (0: all).
    standby_spare: int = 0
    # The outage weighed against `availability_target` halves this often (outage_budget.py).
    budget_half_life: float = outage_budget.DEFAULT_HALF_LIFE


_PROTECTING = "recent outage above the {:g}% availability target"


def _protecting(target: float | None) -> str:
    return _PROTECTING.format(round(100 * (target or 0.0), 6))


def protecting(saved_state: dict[str, Any]) -> bool:
    """Whether a saved state serves from on-demand only for an availability target."""
    return outage_budget.OutageBudget.from_json(saved_state.get("budget")).protecting


def on_demand_only(saved_state: dict[str, Any], target: float | None) -> str:
    """Why a service runs on on-demand only, from its saved state ("" when it does not)."""
    return _protecting(target) if target is not None and protecting(saved_state) else ""


def hedge_size(risk: float, config: PlacementConfig, params: AdaptiveHedgeParams) -> int:
    """Extra spot replicas for the current risk: none when calm, more when volatile."""
    if risk < params.calm_risk:
        return 0
    base = max(1, config.num_overprovision)
    return base if risk < params.volatile_risk else base + 1


class AdaptiveHedgePolicy:
    """The successor of SpotHedge for `use_spot: true` services (issue 17)."""

    name = "adaptive_hedge"

    def __init__(
        self,
        refusal_backoff: float = refusals.DEFAULT_BACKOFF_SECONDS,
        params: AdaptiveHedgeParams | None = None,
        **overrides: Any,
    ) -> None:
        self.refusal_backoff = refusal_backoff
        self.params = AdaptiveHedgeParams(**{**vars(params or AdaptiveHedgeParams()), **overrides})

    def initial_state(self) -> AdaptiveHedgeState:
        return AdaptiveHedgeState()

    def plan(self, inp: PolicyInput, state: AdaptiveHedgeState) -> tuple[Plan, AdaptiveHedgeState]:
        state = self._observe(inp, state)
        p = self.params
        target = max(0, inp.target)
        cfg = inp.config
        current, outdated = split_by_version(inp.replicas, inp.latest_version)
        spots = [r for r in current if r.spot]
        ready_spot = sum(1 for r in spots if r.ready)
        market_risk = self._market_risk(inp.now, state)
        hedge = hedge_size(market_risk, cfg, p) if cfg.use_spot else 0
        want_spot = max(0, target + hedge - cfg.base_ondemand_fallback_replicas)
        if not cfg.use_spot:
            want_spot = 0

        risk = zone_risk.zone_risk(state.risk, p.refusal_weight)
        avoid = refusals.recently_refused(state.spot_refused, inp.now, self.refusal_backoff)
        usable = usable_offers(inp.offers, risk, p.avoid_risk)
        _, exposed, hot = self._exposure(inp, state)
        if p.standby_drops_hedge and cfg.use_spot and exposed:
            want_spot = max(0, target - cfg.base_ondemand_fallback_replicas)
        if p.diversify and cfg.use_spot and exposed:
            want_spot += exposed
            cool = [o for o in usable if o.location.key not in hot]
            usable = cool or usable
        protect = cfg.use_spot and state.budget.protecting
        if protect:
            ready_od = sum(1 for r in current if not r.spot and r.ready)
            want_spot = min(len(spots), max(0, target - ready_od))
        excess = len(spots) - want_spot
        clean = [o for o in usable if risk.get(o.location.key, 0.0) < p.rebalance_risk]
        ready_ones = [r for r in spots if r.ready]
        moving = p.rebalance and excess > 0 and len(ready_ones) < len(spots)
        if moving and replica_to_move(ready_ones, clean, avoid) is not None:
            excess -= 1  # the replica launched to rebalance: keep it until it is ready
        stop_spot = spot_removal(spots, excess, risk)
        kept = [r for r in spots if r.replica_id not in stop_spot]
        balance = 0
        if p.rebalance and cfg.use_spot and len(kept) == want_spot and all(r.ready for r in kept):
            balance = int(replica_to_move(kept, clean, avoid) is not None)
        where = clean if balance else usable
        missing = want_spot - len(kept) + balance
        new_spot = place_spread(where, (r.location for r in kept), missing, risk, avoid)

        want_od = (
            target
            if protect
            else self._on_demand_target(inp, target, hedge, ready_spot, state, market_risk)
        )
        avoid_od = refusals.recently_refused(state.on_demand_refused, inp.now, self.refusal_backoff)
        new_od, stop_od = scale_on_demand(inp, want_od, avoid_od)
        plan = Plan(
            launches=tuple(Launch(loc, spot=True) for loc in new_spot) + tuple(new_od),
            terminations=stop_spot + stop_od + outdated_to_remove(outdated, current, target),
            spot_target=want_spot,
            on_demand_target=want_od,
            notes=(
                f"risk {market_risk:.2f}: {hedge} extra spot",
                f"spot {len(spots)}/{want_spot} launched, {ready_spot} ready",
                f"on-demand fallback {want_od}",
            ),
            on_demand_reason=_protecting(cfg.availability_target) if protect else "",
        )
        return plan, state

    def _on_demand_target(
        self,
        inp: PolicyInput,
        target: int,
        hedge: int,
        ready_spot: int,
        state: AdaptiveHedgeState,
        market_risk: float,
    ) -> int:
        cfg = inp.config
        if not cfg.use_spot:
            return target
        wanted = cfg.base_ondemand_fallback_replicas
        if cfg.dynamic_ondemand_fallback:
            last = state.last_preempted_at
            recent = last is not None and inp.now - last < self.params.cover_seconds
            covered = market_risk >= self.params.cover_risk and recent
            cover = target + (hedge if covered else 0)
            short = max(0, cover - cfg.base_ondemand_fallback_replicas - ready_spot)
            wanted += short
            ready, exposed, _ = self._exposure(inp, state)
            if exposed:
                wanted = max(wanted, target - (ready - exposed))
            last = state.last_preempted_at
            if last is not None and inp.now - last < self.params.stable_seconds:
                current, _ = split_by_version(inp.replicas, inp.latest_version)
                wanted = max(wanted, sum(1 for r in current if not r.spot))
        return max(0, min(target, wanted))

    def _exposure(
        self, inp: PolicyInput, state: AdaptiveHedgeState
    ) -> tuple[int, int, frozenset[str]]:
        """(ready spot replicas, the most of them in one hot zone, the hot zones): a zone is
        hot while its recent preemptions, halving every `hot_half_life`, reach `hot_risk`."""
        p = self.params
        current, _ = split_by_version(inp.replicas, inp.latest_version)
        ready = Counter(r.location.key for r in current if r.spot and r.ready)
        scores = zone_risk.zone_risk(state.hot, 0.0)
        hot = frozenset(k for k, v in scores.items() if v >= p.hot_risk)
        exposed = max((n for k, n in ready.items() if k in hot), default=0)
        exposed = max(0, exposed - p.standby_spare)
        return sum(ready.values()), exposed, hot

    def _market_risk(self, now: float, state: AdaptiveHedgeState) -> float:
        """Recent preemptions anywhere, plus a prior of one at the start: a policy that has
        seen nothing yet has not seen a calm market either."""
        started = now if state.started_at is None else state.started_at
        prior = math.pow(2.0, -max(0.0, now - started) / self.params.half_life)
        return zone_risk.preemption_risk(state.market) + prior

    def _observe(self, inp: PolicyInput, state: AdaptiveHedgeState) -> AdaptiveHedgeState:
        backoff = self.refusal_backoff
        spot_log = refusals.record_refusals(state.spot_refused, inp.events, spot=True)
        od_log = refusals.record_refusals(state.on_demand_refused, inp.events, spot=False)
        preempted = [e.at for e in inp.events if e.spot and e.kind is LocationEventKind.PREEMPTED]
        last = state.last_preempted_at
        if preempted:
            last = max([*preempted, *(() if last is None else (last,))])
        return AdaptiveHedgeState(
            risk=zone_risk.observe(state.risk, inp.events, inp.now, self.params.zone_half_life),
            market=zone_risk.observe(state.market, inp.events, inp.now, self.params.half_life),
            hot=zone_risk.observe(state.hot, inp.events, inp.now, self.params.hot_half_life),
            started_at=inp.now if state.started_at is None else state.started_at,
            last_preempted_at=last,
            spot_refused=refusals.prune(spot_log, inp.now, backoff),
            on_demand_refused=refusals.prune(od_log, inp.now, backoff),
            budget=state.budget.observe(
                inp.now,
                _serving(inp),
                max(0, inp.target),
                inp.config.availability_target,
                self.params.budget_half_life,
            ),
        )

    def state_to_dict(self, state: AdaptiveHedgeState) -> dict[str, Any]:
        return {
            "risk": zone_risk.table_to_json(state.risk),
            "market": zone_risk.table_to_json(state.market),
            "hot": zone_risk.table_to_json(state.hot),
            "started_at": state.started_at,
            "last_preempted_at": state.last_preempted_at,
            "spot_refused": refusals.log_to_json(state.spot_refused),
            "on_demand_refused": refusals.log_to_json(state.on_demand_refused),
            "budget": state.budget.to_json(),
        }

    def state_from_dict(self, data: dict[str, Any]) -> AdaptiveHedgeState:
        last = data.get("last_preempted_at")
        started = data.get("started_at")
        return AdaptiveHedgeState(
            risk=zone_risk.table_from_json(data.get("risk")),
            market=zone_risk.table_from_json(data.get("market")),
            hot=zone_risk.table_from_json(data.get("hot")),
            started_at=None if started is None else float(started),
            last_preempted_at=None if last is None else float(last),
            spot_refused=refusals.log_from_json(data.get("spot_refused")),
            on_demand_refused=refusals.log_from_json(data.get("on_demand_refused")),
            budget=outage_budget.OutageBudget.from_json(data.get("budget")),
        )


def _serving(inp: PolicyInput) -> int:
    """Ready replicas of the latest version (one on notice serves until the notice ends,
    where the driver says so)."""
    current, _ = split_by_version(inp.replicas, inp.latest_version)
    return sum(1 for r in current if r.ready) + inp.serving_on_notice
