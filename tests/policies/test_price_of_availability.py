"""The clairvoyant bound of benchmarks/policy/price_of_availability.py: the README quotes it as
the cheapest way to 99.5% on aws2, so its knapsack must pick the cheapest feasible mix."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from policies.simulation.engine import RunResult

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "policy" / "price_of_availability.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("price_of_availability", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(outage: int, cost: float) -> RunResult:
    return RunResult(
        cost=cost * 100,
        reference_cost=100.0,
        available_ticks=1000 - outage,
        measured_ticks=1000,
        preemptions=0,
        launches=0,
        refused_launches=0,
        spans=(),
        duration_seconds=30000.0,
    )


def test_the_bound_buys_availability_where_it_is_cheapest() -> None:
    mod = load_script()
    # Spot is cheap but loses 20 ticks on windows 0-2 and 2 elsewhere; on-demand never loses.
    spot = [run(20 if r < 3 else 2, 0.5) for r in range(mod.REPEATS)]
    on_demand = [run(0, 1.0) for _ in range(mod.REPEATS)]
    row = mod.clairvoyant_mix({"spot": spot, "od": on_demand}, allowed=30, measured=10000)
    # 30 ticks allowed: the 7 calm windows (14) plus one rough window (20) is 34, too many;
    # so every rough window runs on-demand, and the calm windows stay on spot.
    assert row.split("|")[3].strip() == f"{(7 * 0.5 + 3 * 1.0) / 10:.3f}"
    assert row.endswith("2 2 2 1 1 1 1 1 1 1 |")
    assert "99.86%" in row


def test_the_bound_says_when_no_mix_reaches_the_bar() -> None:
    mod = load_script()
    bad = [run(50, 0.5) for _ in range(mod.REPEATS)]
    assert "not reachable" in mod.clairvoyant_mix({"spot": bad}, allowed=30, measured=10000)
