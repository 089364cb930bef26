"""How long the simulator takes: 30 days of the 9-zone aws3 trace, one policy, one run.

    .venv/bin/python benchmarks/policy/time_simulator.py

Times the tick loop alone (86,400 ticks of 30 s, the policy planning every tick) and then
with the Poisson latency model over the same 30 days.
"""

from __future__ import annotations

import time

from policies.simulation.engine import SimSettings
from policies.simulation.experiment import ExperimentSpec, run_experiment
from policies.simulation.traces import load_trace, shared_dir

SHARED = shared_dir()


def timed(spec: ExperimentSpec) -> float:
    started = time.perf_counter()
    run_experiment(spec)
    return time.perf_counter() - started


def main() -> None:
    trace = load_trace(SHARED / "traces" / "aws3-first-half")
    for policy in ("spothedge", "even_spread", "on_demand", "optimal"):
        base = ExperimentSpec(trace, (policy,), SimSettings(), hours=720, repeats=1, workloads=())
        with_latency = ExperimentSpec(
            trace, (policy,), SimSettings(), hours=720, repeats=1, workloads=("poisson",)
        )
        print(
            f"{policy:12s} 30 days x {len(trace.zones)} zones: tick loop {timed(base):.2f} s, "
            f"with Poisson latency {timed(with_latency):.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
