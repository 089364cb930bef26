"""The tick loop: a policy plans, the trace decides what the clouds allow.

Per tick, in this order: replicas whose notice ran out are taken; replicas whose cold start
is over become ready (READY events); spot replicas above the zone's capacity are preempted,
newest first or at random (PREEMPTED events); the policy plans; terminations happen; each
spot launch succeeds only while the zone is under its capacity, and a refused one is
reported back to the policy in a re-plan within the same tick (LAUNCH_REFUSED events), as
the controller does. Then the tick is
accounted: every launched replica costs its price for the tick, and the tick is available
if at least `target` replicas are ready. Ticks before the first cold start is over are not
measured. Deterministic given the seed.

With a preemption notice of n ticks (`notice_seconds`, rounded up to ticks), the cloud warns
n ticks ahead: a zone's capacity at tick t is the lowest it will be over ticks t..t+n, a
replica above it gets its notice at t (the PREEMPTED event, and it leaves the policy's view,
as a DRAINING replica leaves the controller's, so its replacement can start at once), keeps
serving and costing until t+n, then is taken (the policy hears how many such replicas still
serve: `PolicyInput.serving_on_notice`). With n = 0 this is the plain model above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from policies.types import (
    Launch,
    Location,
    LocationEvent,
    LocationEventKind,
    Offer,
    PlacementConfig,
    Policy,
    PolicyInput,
    ReplicaView,
)

PreemptionOrder = Literal["newest", "random"]


@dataclass(frozen=True)
class SimSettings:
    target: int = 3
    overprovision: int = 1
    base_on_demand: int = 0
    dynamic_fallback: bool = True
    cold_start_seconds: float = 120.0
    tick_seconds: float = 30.0
    preemption: PreemptionOrder = "newest"
    notice_seconds: float = 0.0
    availability_target: float | None = None
    """A fraction (0.995) for `adaptive_hedge` (policies/outage_budget.py); others ignore it."""

    @property
    def cold_start_ticks(self) -> int:
        return math.ceil(self.cold_start_seconds / self.tick_seconds - 1e-9)

    @property
    def notice_ticks(self) -> int:
        return math.ceil(self.notice_seconds / self.tick_seconds - 1e-9)

    def placement(self) -> PlacementConfig:
        return PlacementConfig(
            use_spot=True,
            num_overprovision=self.overprovision,
            base_ondemand_fallback_replicas=self.base_on_demand,
            dynamic_ondemand_fallback=self.dynamic_fallback,
            availability_target=self.availability_target,
        )


@dataclass(frozen=True)
class ReplicaSpan:
    """One replica's life in seconds: serving from `ready_at` (None: never) to `ended_at`.
    `lost`: it was preempted (requests on it fail) rather than stopped (it drains)."""

    replica_id: int
    location: Location
    spot: bool
    launched_at: float
    ready_at: float | None
    ended_at: float
    lost: bool


@dataclass(frozen=True)
class RunResult:
    cost: float
    reference_cost: float
    available_ticks: int
    measured_ticks: int
    preemptions: int
    launches: int
    refused_launches: int
    spans: tuple[ReplicaSpan, ...]
    duration_seconds: float

    @property
    def relative_cost(self) -> float:
        return self.cost / self.reference_cost if self.reference_cost else 0.0

    @property
    def availability(self) -> float:
        return self.available_ticks / self.measured_ticks if self.measured_ticks else 0.0


@dataclass
class _Live:
    view: ReplicaView
    row: int
    launched_tick: int
    ready_tick: int | None = None
    taken_at_tick: int | None = None
    """Set once its preemption notice came: the tick the cloud takes it."""


@dataclass
class _World:
    offers: tuple[Offer, ...]
    rows: dict[str, int]
    live: dict[int, _Live] = field(default_factory=dict)
    spans: list[ReplicaSpan] = field(default_factory=list)
    next_id: int = 1
    preemptions: int = 0
    launches: int = 0
    refused: int = 0


def _end(world: _World, replica_id: int, now: float, tick: float, lost: bool) -> None:
    rep = world.live.pop(replica_id)
    ready_at = None if rep.ready_tick is None else rep.ready_tick * tick
    world.spans.append(
        ReplicaSpan(
            replica_id,
            rep.view.location,
            rep.view.spot,
            rep.launched_tick * tick,
            ready_at,
            now,
            lost,
        )
    )


def _become_ready(world: _World, t: int, cold: int, now: float) -> list[LocationEvent]:
    events = []
    for rep in world.live.values():
        if rep.taken_at_tick is not None:
            continue  # draining: it never starts serving
        if rep.ready_tick is None and t - rep.launched_tick >= cold:
            rep.ready_tick = t
            v = rep.view
            rep.view = ReplicaView(v.replica_id, v.location, v.spot, True, v.version, v.launched_at)
            events.append(LocationEvent(LocationEventKind.READY, v.location, now, v.spot))
    return events


def _preempt(
    world: _World,
    cap: np.ndarray[Any, Any],
    t: int,
    settings: SimSettings,
    rng: np.random.Generator,
) -> list[LocationEvent]:
    """Notify (or, without a notice, take at once) the spot replicas above `cap`."""
    tick = settings.tick_seconds
    now = t * tick
    by_row: dict[int, list[_Live]] = {}
    for rep in world.live.values():
        if rep.view.spot and rep.taken_at_tick is None:
            by_row.setdefault(rep.row, []).append(rep)
    events = []
    for row, reps in by_row.items():
        excess = len(reps) - int(cap[row])
        if excess <= 0:
            continue
        if settings.preemption == "random":
            victims = [reps[i] for i in rng.permutation(len(reps))[:excess]]
        else:
            victims = sorted(reps, key=lambda r: (-r.launched_tick, -r.view.replica_id))[:excess]
        for rep in victims:
            if settings.notice_ticks == 0:
                _end(world, rep.view.replica_id, now, tick, lost=True)
            else:
                rep.taken_at_tick = t + settings.notice_ticks
            world.preemptions += 1
            events.append(LocationEvent(LocationEventKind.PREEMPTED, rep.view.location, now))
    return events


def _take_noticed(world: _World, t: int, tick: float) -> None:
    """The cloud takes the replicas whose notice ran out (requests still on them fail)."""
    for rid, rep in list(world.live.items()):
        if rep.taken_at_tick is not None and rep.taken_at_tick <= t:
            _end(world, rid, t * tick, tick, lost=True)


def _lowest_ahead(capacity: np.ndarray[Any, Any], ticks: int) -> np.ndarray[Any, Any]:
    """capacity[:, t] replaced by its minimum over t..t+ticks (the end of the trace repeats)."""
    lowest = capacity.copy()
    for k in range(1, ticks + 1):
        ahead = np.concatenate([capacity[:, k:], np.repeat(capacity[:, -1:], k, axis=1)], axis=1)
        lowest = np.minimum(lowest, ahead[:, : capacity.shape[1]])
    return lowest


def _launch(
    world: _World, launches: tuple[Launch, ...], cap: np.ndarray[Any, Any], t: int, now: float
) -> list[LocationEvent]:
    refused = []
    for launch in launches:
        row = world.rows.get(launch.location.key)
        if row is None:
            raise ValueError(f"policy launched in {launch.location}, which was not offered")
        if launch.spot:
            running = sum(
                1
                for r in world.live.values()
                if r.view.spot and r.row == row and r.taken_at_tick is None
            )
            if running >= cap[row]:
                world.refused += 1
                refused.append(
                    LocationEvent(LocationEventKind.LAUNCH_REFUSED, launch.location, now)
                )
                continue
        rid = world.next_id
        world.next_id += 1
        view = ReplicaView(rid, launch.location, launch.spot, False, 1, now)
        world.live[rid] = _Live(view, row, t)
        world.launches += 1
    return refused


def run_window(
    policy: Policy,
    capacity: np.ndarray[Any, Any],
    offers: tuple[Offer, ...],
    settings: SimSettings,
    seed: int = 0,
) -> RunResult:
    """Replay `policy` over `capacity[row, tick]`, where row i is the zone of `offers[i]`."""
    rng = np.random.default_rng(seed)
    tick = settings.tick_seconds
    cold = settings.cold_start_ticks
    world = _World(offers, {o.location.key: i for i, o in enumerate(offers)})
    spot_price = [o.spot_price if o.spot_price is not None else math.inf for o in offers]
    od_price = [o.on_demand_price for o in offers]
    reference = settings.target * min(od_price)
    config = settings.placement()
    state = policy.initial_state()
    cost = 0.0
    available = measured = 0
    ticks = capacity.shape[1]
    if settings.notice_ticks:
        capacity = _lowest_ahead(capacity, settings.notice_ticks)
    for t in range(ticks):
        now = t * tick
        cap = capacity[:, t]
        _take_noticed(world, t, tick)
        events = _become_ready(world, t, cold, now)
        events += _preempt(world, cap, t, settings, rng)
        for _ in range(len(offers) + 2):
            views = tuple(r.view for r in world.live.values() if r.taken_at_tick is None)
            noticed = sum(
                1
                for r in world.live.values()
                if r.taken_at_tick is not None and r.ready_tick is not None
            )
            inp = PolicyInput(
                settings.target, offers, views, config, now, 1, tuple(events), noticed
            )
            plan, state = policy.plan(inp, state)
            for rid in plan.terminations:
                if rid in world.live:
                    _end(world, rid, now, tick, lost=False)
            events = _launch(world, plan.launches, cap, t, now)
            if not events:
                break
        if t >= cold:
            measured += 1
            ready = 0
            for rep in world.live.values():
                ready += rep.ready_tick is not None
                row = rep.row
                cost += spot_price[row] if rep.view.spot else od_price[row]
            available += ready >= settings.target
    end = ticks * tick
    for rid in list(world.live):
        _end(world, rid, end, tick, lost=False)
    return RunResult(
        cost=cost,
        reference_cost=reference * measured,
        available_ticks=available,
        measured_ticks=measured,
        preemptions=world.preemptions,
        launches=world.launches,
        refused_launches=world.refused,
        spans=tuple(sorted(world.spans, key=lambda s: s.replica_id)),
        duration_seconds=end,
    )
