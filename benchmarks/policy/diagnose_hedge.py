"""Why a policy is unavailable: each stretch of ticks below the target, and what caused it.

    .venv/bin/python benchmarks/policy/diagnose_hedge.py aws1 spothedge [-v]

The paper's setup (10 x 24 h windows, seed 0). A stretch is classed by how many replicas were
ready just before, how many were lost at its first tick, in how many zones, and whether
spot launches were refused during it; -v lists every stretch. Then the share of ticks where
the ready spot replicas were spread, or all in one zone (with or without room elsewhere).
Use it on in-sample traces (aws1, gcp1) only when choosing adaptive_hedge's parameters.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np

from policies.registry import make_policy
from policies.simulation.engine import RunResult, SimSettings, run_window
from policies.simulation.experiment import ExperimentSpec, window_runs
from policies.simulation.traces import load_trace, shared_dir
from policies.types import LocationEventKind, Plan, Policy, PolicyInput


class Recorder:
    """Wraps a policy and remembers how many spot launches were refused per tick."""

    def __init__(self, inner: Policy, tick: float) -> None:
        self.inner, self.name, self.tick = inner, inner.name, tick
        self.refused: Counter[int] = Counter()

    def initial_state(self) -> Any:
        return self.inner.initial_state()

    def plan(self, inp: PolicyInput, state: Any) -> tuple[Plan, Any]:
        t = round(inp.now / self.tick)
        self.refused[t] += sum(e.kind is LocationEventKind.LAUNCH_REFUSED for e in inp.events)
        return self.inner.plan(inp, state)

    def state_to_dict(self, state: Any) -> dict[str, Any]:
        return self.inner.state_to_dict(state)

    def state_from_dict(self, data: dict[str, Any]) -> Any:
        return self.inner.state_from_dict(data)


def stretches(res: RunResult, rec: Recorder, settings: SimSettings, ticks: int) -> list[str]:
    tick = settings.tick_seconds
    ready = np.zeros(ticks, int)
    for s in res.spans:
        if s.ready_at is not None:
            ready[round(s.ready_at / tick) : round(s.ended_at / tick)] += 1
    found, t = [], settings.cold_start_ticks
    while t < ticks:
        if ready[t] >= settings.target:
            t += 1
            continue
        start = t
        while t < ticks and ready[t] < settings.target:
            t += 1
        lost = [s for s in res.spans if s.lost and round(s.ended_at / tick) == start]
        zones = len({s.location.key for s in lost})
        refused = sum(rec.refused[k] for k in range(start - 1, t))
        kind = f"lost {len(lost)} of {ready[start - 1]} ready in {zones} zone(s)"
        found.append(kind + (", spot refused" if refused else "") + f"|{start}|{t - start}")
    return found


def concentration(
    res: RunResult, cap: np.ndarray[Any, Any], keys: list[str], settings: SimSettings
) -> Counter[str]:
    """Ticks by where the ready spot replicas were: spread over zones, all in one zone while
    another zone had room for more, or all in one zone while no other zone had any."""
    tick, ticks = settings.tick_seconds, cap.shape[1]
    held = np.zeros((len(keys), ticks), int)
    for s in res.spans:
        if s.spot and s.ready_at is not None:
            held[
                keys.index(s.location.key), round(s.ready_at / tick) : round(s.ended_at / tick)
            ] += 1
    found: Counter[str] = Counter()
    for t in range(settings.cold_start_ticks, ticks):
        h = held[:, t]
        if h.sum() == 0 or h.max() < h.sum():
            found["spread (or no spot)"] += 1
            continue
        room = max(int(cap[i, t] - h[i]) for i in range(len(keys)) if h[i] == 0)
        found["one zone, another had room" if room > 0 else "one zone, no room elsewhere"] += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("trace")
    parser.add_argument("policy")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    trace = load_trace(shared_dir() / "traces" / args.trace)
    settings = SimSettings()
    spec = ExperimentSpec(trace, (args.policy,), settings, workloads=())
    kinds: Counter[str] = Counter()
    lost_ticks: Counter[str] = Counter()
    where: Counter[str] = Counter()
    for w in window_runs(spec):
        cap, offers = w.capacity, w.offers
        rec = Recorder(make_policy(args.policy), settings.tick_seconds)
        res = run_window(rec, cap, offers, settings, w.seed)
        keys = [o.location.key for o in offers]
        where += concentration(res, cap, keys, settings)
        for line in stretches(res, rec, settings, cap.shape[1]):
            kind, start, length = line.split("|")
            kinds[kind] += 1
            lost_ticks[kind] += int(length)
            if args.verbose:
                print(f"repeat {w.window.repeat} ticks {start}+{length}: {kind}")
    for kind, count in kinds.most_common():
        print(f"{count:3d} stretches, {lost_ticks[kind]:4d} ticks: {kind}")
    total = sum(where.values())
    for kind, count in where.most_common():
        print(f"{100 * count / total:5.1f}% of ticks: ready spot {kind}")


if __name__ == "__main__":
    main()
