"""SpotHedge against adaptive_hedge on every trace, with and without preemption notices.

    .venv/bin/python benchmarks/policy/compare_hedge.py [--out benchmarks/policy/HEDGE.md]

The paper's setup (N_tar = 3, N_extra = 1, cold start 120 s, on-demand = 3x spot, 24 h
windows of 30 s ticks, 10 repeats, seed 0). adaptive_hedge's parameters were chosen on aws1
and gcp1 only; aws2 and aws3-first-half are out of sample. Cells are availability / cost
relative to 3 on-demand replicas; "gap" is cost over the offline optimum's (computed
without notice, which can only help a policy). The last policy column is adaptive_hedge with
an availability target (`--availability-target`, 99.5 by default: the issue's bar), which
buys on-demand while the recent outage is above what the target allows
(policies/outage_budget.py). Prints a markdown table.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from policies.simulation.engine import SimSettings
from policies.simulation.experiment import ExperimentSpec, PolicySummary, run_experiment
from policies.simulation.traces import load_trace, shared_dir

POLICIES = ("spothedge", "adaptive_hedge")
IN_SAMPLE = ("aws1", "gcp1")


def figures(s: PolicySummary, optimal: float) -> str:
    avail = s.mean(lambda r: r.availability)
    cost = s.mean(lambda r: r.relative_cost)
    return f"{avail * 100:.2f}% / {cost:.3f} (+{(cost / optimal - 1) * 100:.0f}%)"


def rows_for(folder: Path, notices: tuple[float, ...], target: float) -> list[str]:
    trace = load_trace(folder)
    optimal_spec = ExperimentSpec(trace, ("optimal",), SimSettings(), workloads=())
    optimal = run_experiment(optimal_spec)[0].mean(lambda r: r.relative_cost)
    sample = "in sample" if folder.name in IN_SAMPLE else "out of sample"
    rows = []
    for notice in notices:
        settings = replace(SimSettings(), notice_seconds=notice)
        spec = ExperimentSpec(trace, POLICIES, settings, workloads=())
        by_name = {s.policy: s for s in run_experiment(spec)}
        targeted = replace(settings, availability_target=target / 100)
        spec = ExperimentSpec(trace, ("adaptive_hedge",), targeted, workloads=())
        (bought,) = run_experiment(spec)
        rows.append(
            f"| {folder.name} ({sample}) | {notice:g} s "
            f"| {figures(by_name['spothedge'], optimal)} "
            f"| {figures(by_name['adaptive_hedge'], optimal)} "
            f"| {figures(bought, optimal)} | {optimal:.3f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=Path, default=shared_dir() / "traces")
    parser.add_argument("--notice", type=float, action="append", default=None)
    parser.add_argument("--availability-target", type=float, default=99.5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    notices = tuple(args.notice or (0.0, 30.0, 120.0))
    target = args.availability_target
    lines = [
        "| trace | notice | SpotHedge avail / cost (gap to optimal) "
        "| adaptive_hedge avail / cost (gap to optimal) "
        f"| adaptive_hedge, availability_target {target:g} | optimal cost |",
        "|---|---|---|---|---|---|",
    ]
    for folder in sorted(p for p in args.traces.iterdir() if p.is_dir()):
        lines += rows_for(folder, notices, target)
    table = "\n".join(lines)
    print()
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
