"""adaptive_hedge against SpotHedge with the paper's setup (10 x 24 h windows, seed 0): on the
traces its parameters were chosen on (aws1, gcp1) and out of sample (aws2, aws3-first-half).
The notices are in benchmarks/policy/compare_hedge.py and HEDGE.md."""

from functools import cache

import pytest

from policies.simulation.engine import SimSettings
from policies.simulation.experiment import ExperimentSpec, run_experiment
from policies.simulation.traces import load_trace, shared_dir

TRACES = shared_dir() / "traces"
Figures = dict[str, tuple[float, float]]


@cache
def paper_setup(name: str) -> Figures:
    folder = TRACES / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: set SERVE_SHARED_DIR to the shared data folder")
    spec = ExperimentSpec(
        load_trace(folder), ("spothedge", "adaptive_hedge"), SimSettings(), workloads=()
    )
    return {
        s.policy: (s.mean(lambda r: r.availability), s.mean(lambda r: r.relative_cost))
        for s in run_experiment(spec)
    }


def meets_the_bar(results: Figures) -> bool:
    """Issue 17's bar on one trace: at least 99.5% and SpotHedge's availability, at most
    SpotHedge's cost."""
    avail, cost = results["adaptive_hedge"]
    return avail >= max(0.995, results["spothedge"][0]) and cost <= results["spothedge"][1]


@pytest.mark.parametrize("name", ["aws1", "gcp1"])
def test_meets_the_bar_on_the_traces_its_parameters_were_chosen_on(name):
    results = paper_setup(name)
    assert meets_the_bar(results), results


def test_strictly_more_available_and_cheaper_than_spothedge_on_aws1():
    results = paper_setup("aws1")
    assert results["adaptive_hedge"][0] > results["spothedge"][0]
    assert results["adaptive_hedge"][1] < results["spothedge"][1]


def test_meets_the_bar_out_of_sample_on_aws3():
    results = paper_setup("aws3-first-half")
    assert meets_the_bar(results), results


@pytest.mark.xfail(
    strict=True,
    reason="issue 17's bar is not met out of sample on aws2: 97.96% (SpotHedge 98.04%, the bar "
    "99.5%), cost 0.572 (SpotHedge 0.570); see benchmarks/policy/HEDGE.md",
)
def test_meets_the_bar_out_of_sample_on_aws2():
    assert meets_the_bar(paper_setup("aws2"))


def test_an_availability_target_of_99_5_is_reached_on_aws2_without_foresight():
    """What the bar's availability costs where no policy that only reacts reaches it: with
    `availability_target: 99.5` adaptive_hedge serves from on-demand while its recent outage is
    above the budget (figures in benchmarks/policy/HEDGE.md)."""
    folder = TRACES / "aws2"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: set SERVE_SHARED_DIR to the shared data folder")
    settings = SimSettings(availability_target=0.995)
    spec = ExperimentSpec(load_trace(folder), ("adaptive_hedge",), settings, workloads=())
    (summary,) = run_experiment(spec)
    availability = summary.mean(lambda r: r.availability)
    cost = summary.mean(lambda r: r.relative_cost)
    assert availability >= 0.995, (availability, cost)
    assert cost < 1.0  # still cheaper than three on-demand replicas
