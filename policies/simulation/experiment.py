"""Repeated windows of one trace, every policy on the same windows, summarised.

Windows are chosen as the paper's artifact chooses them, so `seed=0` replays the paper's
runs: offsets (in ticks) are `numpy.random.RandomState(seed).randint(0, ticks - window)`
drawn once per repeat, and the zone order is shuffled in place once per repeat with
`random.Random(seed)`, starting from the zones sorted by file name. Every policy sees the
same windows and, per workload, the same request arrivals.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from policies.optimal import OptimalProblem, solve_optimal
from policies.registry import make_policy
from policies.simulation.engine import RunResult, SimSettings, run_window
from policies.simulation.latency import serve_requests, service_times
from policies.simulation.traces import SpotTrace
from policies.simulation.workloads import MafTrace, arrivals
from policies.types import Offer, Policy


@dataclass(frozen=True)
class Window:
    repeat: int
    offset_ticks: int
    zone_order: tuple[int, ...]


@dataclass(frozen=True)
class ExperimentSpec:
    trace: SpotTrace
    policies: tuple[str, ...]
    settings: SimSettings
    hours: float = 24.0
    repeats: int = 10
    seed: int = 0
    on_demand_cost: float = 3.0
    workloads: tuple[str, ...] = ("poisson",)
    request_rate: float = 0.15
    maf: MafTrace | None = None
    optimal_max_launched: int | None = None
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Optional real prices per location key: (on-demand, spot) per hour."""

    @property
    def window_ticks(self) -> int:
        return round(self.hours * 3600 / self.settings.tick_seconds)


@dataclass(frozen=True)
class LatencySummary:
    p50: float
    p90: float
    p99: float
    failure_rate: float
    requests: int


@dataclass(frozen=True)
class RunSummary:
    window: Window
    result: RunResult
    latency: dict[str, LatencySummary]


@dataclass(frozen=True)
class PolicySummary:
    policy: str
    runs: tuple[RunSummary, ...]
    latency: dict[str, LatencySummary]

    def mean(self, pick: Callable[[RunResult], float]) -> float:
        return float(np.mean([pick(r.result) for r in self.runs]))

    def std(self, pick: Callable[[RunResult], float]) -> float:
        return float(np.std([pick(r.result) for r in self.runs]))


class ExperimentError(ValueError):
    """The experiment cannot run as asked; the message says what to change."""


def choose_windows(
    trace_ticks: int, window_ticks: int, zones: int, repeats: int, seed: int
) -> list[Window]:
    if window_ticks <= 0:
        raise ExperimentError("--hours must be positive")
    if window_ticks > trace_ticks:
        raise ExperimentError(
            f"a window of {window_ticks} ticks is longer than the trace ({trace_ticks} ticks); "
            "ask for fewer --hours"
        )
    offsets = np.random.RandomState(seed)
    shuffler = random.Random(seed)
    order = list(range(zones))
    windows = []
    for repeat in range(repeats):
        span = trace_ticks - window_ticks
        offset = int(offsets.randint(0, span)) if span > 0 else 0
        shuffler.shuffle(order)
        windows.append(Window(repeat, offset, tuple(order)))
    return windows


@dataclass(frozen=True)
class WindowRun:
    """What one window of an experiment replays: the same for every policy, so a benchmark
    that runs policies one window at a time sees exactly what `run_experiment` sees."""

    window: Window
    capacity: np.ndarray[Any, Any]
    offers: tuple[Offer, ...]
    seed: int


def window_runs(spec: ExperimentSpec) -> list[WindowRun]:
    full = spec.trace.capacity_at_ticks(spec.settings.tick_seconds)
    windows = choose_windows(
        full.shape[1], spec.window_ticks, len(spec.trace.zones), spec.repeats, spec.seed
    )
    runs = []
    for window in windows:
        order = list(window.zone_order)
        capacity = full[order, window.offset_ticks : window.offset_ticks + spec.window_ticks]
        seed = spec.seed * 1000 + window.repeat
        runs.append(WindowRun(window, capacity, _offers(spec, order), seed))
    return runs


def _offers(spec: ExperimentSpec, order: Sequence[int]) -> tuple[Offer, ...]:
    offers = []
    for i in order:
        location = spec.trace.zones[i].location
        od, spot = spec.prices.get(location.key, (spec.on_demand_cost, 1.0))
        offers.append(Offer(location, od, spot, spec.trace.zones[i].instance))
    return tuple(offers)


def _build(
    name: str, spec: ExperimentSpec, capacity: np.ndarray[Any, Any], offers: tuple[Offer, ...]
) -> Policy:
    if name != "optimal":
        return make_policy(name)
    s = spec.settings
    problem = OptimalProblem(
        locations=tuple(o.location for o in offers),
        capacity=capacity,
        tick_seconds=s.tick_seconds,
        cold_start_ticks=s.cold_start_ticks,
        target=s.target,
        per_location=s.target + s.overprovision,
        spot_prices=tuple(o.spot_price or 0.0 for o in offers),
        on_demand_price=min(o.on_demand_price for o in offers),
        measure_from=s.cold_start_ticks,
        max_launched=spec.optimal_max_launched,
    )
    return make_policy("optimal", schedule=solve_optimal(problem))


def _latency(
    outcomes: Sequence[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
) -> LatencySummary:
    lat = np.concatenate([o[0] for o in outcomes]) if outcomes else np.zeros(0)
    failed = np.concatenate([o[1] for o in outcomes]) if outcomes else np.zeros(0, bool)
    if lat.size == 0:
        return LatencySummary(0.0, 0.0, 0.0, 0.0, 0)
    p50, p90, p99 = np.percentile(lat, [50, 90, 99])
    return LatencySummary(float(p50), float(p90), float(p99), float(failed.mean()), lat.size)


def _settings_for(name: str, settings: SimSettings) -> SimSettings:
    """Baselines run without overprovisioning, as in the paper."""
    if name in ("spothedge", "adaptive_hedge", "optimal"):
        return settings
    return replace(settings, overprovision=0)


def run_experiment(
    spec: ExperimentSpec, on_run_done: Callable[[str, int], None] | None = None
) -> list[PolicySummary]:
    """Every policy of `spec` over the same windows; `on_run_done(policy, repeat)` per run."""
    windows = window_runs(spec)
    summaries = []
    for name in spec.policies:
        runs = []
        pooled: dict[str, list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]] = {}
        for w in windows:
            window = w.window
            policy = _build(name, spec, w.capacity, w.offers)
            settings = _settings_for(name, spec.settings)
            result = run_window(policy, w.capacity, w.offers, settings, w.seed)
            latency = {}
            for k, workload in enumerate(spec.workloads):
                rng = np.random.default_rng([spec.seed, window.repeat, k])
                times = arrivals(
                    workload, spec.request_rate, result.duration_seconds, rng, spec.maf
                )
                outcome = serve_requests(times, result.spans, service_times(times.size, rng))
                pooled.setdefault(workload, []).append((outcome.latencies, outcome.failed))
                latency[workload] = _latency([(outcome.latencies, outcome.failed)])
            runs.append(RunSummary(window, result, latency))
            if on_run_done is not None:
                on_run_done(name, window.repeat)
        summaries.append(
            PolicySummary(name, tuple(runs), {w: _latency(o) for w, o in pooled.items()})
        )
    return summaries
