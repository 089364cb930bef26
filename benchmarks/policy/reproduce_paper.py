"""Reproduce the SpotHedge paper's simulation table (Section 5.2) on ../shared/traces.

    .venv/bin/python benchmarks/policy/reproduce_paper.py [--out benchmarks/policy/RESULTS.md]

Settings as in the paper's artifact: N_tar = 3, N_extra = 1 (SpotHedge, Optimal), cold start
120 s, on-demand = 3x spot, 24 h windows of 30 s ticks, 10 repeats at random offsets with
seed 0. Prints a markdown table of our figures beside the published simulator's, and the
wall time of each trace.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from policies.simulation.engine import SimSettings
from policies.simulation.experiment import ExperimentSpec, PolicySummary, run_experiment
from policies.simulation.traces import load_trace, shared_dir

POLICIES = ("spothedge", "even_spread", "round_robin", "on_demand", "optimal")
PAPER = {
    "aws1": ("0.993 / 0.514", "0.304 / 0.194", "0.880 / 0.300", "0.407"),
    "aws2": ("0.976 / 0.573", "0.382 / 0.207", "0.774 / 0.270", "0.479"),
    "gcp1": ("0.998 / 0.462", "0.476 / 0.250", "0.988 / 0.332", "0.335"),
    "aws3-first-half": ("0.995 / 0.471", "0.210 / 0.174", "0.971 / 0.327", ""),
}


def cell(s: PolicySummary) -> str:
    return f"{s.mean(lambda r: r.availability):.3f} / {s.mean(lambda r: r.relative_cost):.3f}"


def run_trace(folder: Path) -> tuple[dict[str, PolicySummary], float, float]:
    trace = load_trace(folder)
    spec = ExperimentSpec(trace, POLICIES, SimSettings(), workloads=())
    started = time.perf_counter()
    results = {s.policy: s for s in run_experiment(spec)}
    elapsed = time.perf_counter() - started
    capped = ExperimentSpec(
        trace, ("optimal",), SimSettings(), workloads=(), optimal_max_launched=4
    )
    capped_cost = run_experiment(capped)[0].mean(lambda r: r.relative_cost)
    return results, capped_cost, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--traces",
        type=Path,
        default=shared_dir() / "traces",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = [
        "| trace | SpotHedge avail / cost | Even Spread avail / cost | Round Robin avail / cost "
        "| Optimal cost | Optimal cost, <= 4 launched | On-demand | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for folder in sorted(p for p in args.traces.iterdir() if p.is_dir()):
        results, capped, elapsed = run_trace(folder)
        paper = PAPER.get(folder.name, ("", "", "", ""))
        optimal = f"{results['optimal'].mean(lambda r: r.relative_cost):.3f}"
        lines.append(
            f"| {folder.name} | {cell(results['spothedge'])} (paper {paper[0]}) "
            f"| {cell(results['even_spread'])} (paper {paper[1]}) "
            f"| {cell(results['round_robin'])} (paper {paper[2]}) "
            f"| {optimal} (paper {paper[3] or '-'}) | {capped:.3f} "
            f"| {cell(results['on_demand'])} | {elapsed:.1f} s |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print()
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
