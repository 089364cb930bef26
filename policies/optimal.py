"""Optimal: an offline integer program that knows the whole spot trace in advance.

It is the lower bound on cost at the required availability: at least `target` replicas
ready at every tick from `measure_from` on, at most `per_location` replicas launched in any
one location (and on-demand), optionally at most `max_launched` in all, spot launches never
above the capacity the trace allows. The paper's artifact bounds each location by
N_tar + N_extra and not the total; that is the default here too. A replica counts as ready at
tick t only if it was launched at every tick of [t - cold_start, t], which is what the
simulator does.

Decisions can only usefully change where the capacity changes, or `cold_start` ticks before
such a change (to have a replacement ready in time), so the program is solved over those
segments instead of over every tick: for 24 h of a 9-zone trace that is a few hundred
segments instead of 2,880 ticks, and CBC answers in about a second. The result is a
schedule; `OptimalPolicy` replays it through the same `plan` interface as every other
policy. Deterministic: CBC is run single-threaded with a fixed seed.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pulp

from policies.on_demand import scale_on_demand
from policies.replica_sets import pick_for_removal
from policies.types import Launch, Location, Plan, PolicyInput


class OptimalUnavailable(RuntimeError):
    """Optimal was asked for without the trace it needs, or the solver found no answer."""


@dataclass(frozen=True)
class ScheduleStep:
    """From `start` seconds on: spot replicas per location key, and on-demand replicas."""

    start: float
    spot: tuple[tuple[str, int], ...]
    on_demand: int


@dataclass(frozen=True)
class OptimalSchedule:
    steps: tuple[ScheduleStep, ...]
    objective: float
    proven_optimal: bool
    starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("an OptimalSchedule needs at least one step")
        object.__setattr__(self, "starts", tuple(step.start for step in self.steps))

    def step_at(self, now: float) -> ScheduleStep:
        """The step in force at `now` (the first one before it starts)."""
        return self.steps[max(0, bisect.bisect_right(self.starts, now) - 1)]


@dataclass(frozen=True)
class OptimalProblem:
    """What the program needs: capacity[zone, tick] over the window, and the rules."""

    locations: tuple[Location, ...]
    capacity: np.ndarray[Any, np.dtype[np.int64]]
    tick_seconds: float
    cold_start_ticks: int
    target: int
    per_location: int
    spot_prices: tuple[float, ...]
    on_demand_price: float
    measure_from: int
    max_launched: int | None = None


def segment_starts(capacity: np.ndarray[Any, Any], cold_start_ticks: int) -> list[int]:
    """Ticks where a decision may change: each capacity change c, and c -/+ cold start.

    A replacement is launched either when capacity appears (c) or just in time for a loss
    (c - cold start); what it replaces is stopped when it is ready (c or c + cold start).
    """
    ticks = capacity.shape[1]
    changes = [0] + [t for t in range(1, ticks) if (capacity[:, t] != capacity[:, t - 1]).any()]
    starts = set(changes)
    for change in changes:
        starts.update({change - cold_start_ticks, change + cold_start_ticks})
    starts.add(cold_start_ticks)
    return sorted(t for t in starts if 0 <= t < ticks)


def _window_ranges(
    starts: Sequence[int], ticks: int, cold: int, measure_from: int
) -> dict[tuple[int, int], None]:
    """Distinct (first, last) segment indexes spanned by [t - cold, t] for measured ticks."""
    seg_of = np.searchsorted(np.asarray(starts), np.arange(ticks), side="right") - 1
    ranges: dict[tuple[int, int], None] = {}
    for t in range(max(measure_from, cold), ticks):
        ranges[(int(seg_of[t - cold]), int(seg_of[t]))] = None
    return ranges


def solve_optimal(problem: OptimalProblem, time_limit: float = 120.0) -> OptimalSchedule:
    """Solve the program with PuLP's bundled CBC; raises OptimalUnavailable if it cannot."""
    with warnings.catch_warnings():
        # PuLP 3.x announces API changes for 4.0; the calls used here work in 2.8 to 3.x.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _solve(problem, time_limit)


def _solve(problem: OptimalProblem, time_limit: float) -> OptimalSchedule:
    cap = problem.capacity
    zones, ticks = cap.shape
    starts = segment_starts(cap, problem.cold_start_ticks)
    ends = [*starts[1:], ticks]
    upper = problem.per_location
    prob = pulp.LpProblem("optimal_placement", pulp.LpMinimize)
    spot = {
        (z, k): pulp.LpVariable(f"s_{z}_{k}", 0, min(upper, int(cap[z, s])), cat="Integer")
        for z in range(zones)
        for k, s in enumerate(starts)
    }
    demand = {k: pulp.LpVariable(f"d_{k}", 0, upper, cat="Integer") for k in range(len(starts))}
    cost = []
    for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
        measured = max(0, e - max(s, problem.measure_from))
        weight = measured + 1e-3 * (e - s - measured)
        if problem.max_launched is not None:
            launched = pulp.lpSum(spot[z, k] for z in range(zones)) + demand[k]
            prob += launched <= problem.max_launched
        row = pulp.lpSum(problem.spot_prices[z] * spot[z, k] for z in range(zones))
        cost.append(weight * (row + problem.on_demand_price * demand[k]))
    prob += pulp.lpSum(cost)
    cold = problem.cold_start_ticks
    for first, last in _window_ranges(starts, ticks, cold, problem.measure_from):
        ready = []
        for z in range(-1, zones):
            r = pulp.LpVariable(f"a_{z + 1}_{first}_{last}", 0)
            for k in range(first, last + 1):
                prob += r <= (demand[k] if z < 0 else spot[z, k])
            ready.append(r)
        prob += pulp.lpSum(ready) >= problem.target
    solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, threads=1, options=["randomS 1"])
    prob.solve(solver)
    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        raise OptimalUnavailable(
            f"CBC found no schedule ({pulp.LpStatus[prob.status]}); "
            "try a longer time limit or a shorter window"
        )
    keys = [loc.key for loc in problem.locations]
    steps = tuple(
        ScheduleStep(
            start=s * problem.tick_seconds,
            spot=tuple((keys[z], round(spot[z, k].value() or 0)) for z in range(zones)),
            on_demand=round(demand[k].value() or 0),
        )
        for k, s in enumerate(starts)
    )
    return OptimalSchedule(
        steps=steps,
        objective=float(pulp.value(prob.objective) or 0.0),
        proven_optimal=prob.sol_status == pulp.LpSolutionOptimal,
    )


class OptimalPolicy:
    """Replays an `OptimalSchedule`: at each call, the counts of the step `now` falls in."""

    name = "optimal"

    def __init__(self, schedule: OptimalSchedule | None = None) -> None:
        if schedule is None:
            raise OptimalUnavailable(
                "the 'optimal' policy must know the whole spot trace in advance, so it only "
                "exists inside the simulator: run `serve simulate --policy optimal`, or build "
                "it with make_policy('optimal', schedule=solve_optimal(problem))"
            )
        self.schedule = schedule

    def initial_state(self) -> None:
        return None

    def plan(self, inp: PolicyInput, state: None) -> tuple[Plan, None]:
        step = self.schedule.step_at(inp.now)
        wanted = dict(step.spot)
        spots = [r for r in inp.replicas if r.spot]
        launches: list[Launch] = []
        stops: list[int] = []
        for key in sorted({*wanted, *(r.location.key for r in spots)}):
            here = [r for r in spots if r.location.key == key]
            missing = wanted.get(key, 0) - len(here)
            launches += [Launch(Location.parse(key), spot=True)] * max(0, missing)
            stops += pick_for_removal(here, -missing)
        new_od, stop_od = scale_on_demand(inp, step.on_demand, frozenset())
        plan = Plan(
            launches=tuple(launches + new_od),
            terminations=tuple(stops) + stop_od,
            spot_target=sum(wanted.values()),
            on_demand_target=step.on_demand,
        )
        return plan, None

    def state_to_dict(self, state: None) -> dict[str, Any]:
        return {}

    def state_from_dict(self, data: dict[str, Any]) -> None:
        return None
