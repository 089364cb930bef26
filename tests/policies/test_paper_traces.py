"""The published traces, one 24 h window each: SpotHedge's claim holds where the baselines
fall short. The full 10-repeat table is benchmarks/policy/reproduce_paper.py."""

import pytest

from policies.simulation.engine import SimSettings
from policies.simulation.experiment import ExperimentSpec, run_experiment
from policies.simulation.traces import load_trace, shared_dir

TRACES = shared_dir() / "traces"


def one_window(name: str, policies: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    folder = TRACES / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: set SERVE_SHARED_DIR to the shared data folder")
    spec = ExperimentSpec(load_trace(folder), policies, SimSettings(), repeats=1, workloads=())
    return {
        s.policy: (s.mean(lambda r: r.availability), s.mean(lambda r: r.relative_cost))
        for s in run_experiment(spec)
    }


def test_spothedge_is_available_and_far_cheaper_than_on_demand_on_aws1():
    availability, cost = one_window("aws1", ("spothedge",))["spothedge"]
    assert availability >= 0.98
    assert cost <= 0.6


def test_even_spread_loses_availability_where_spothedge_keeps_it_on_aws1():
    results = one_window("aws1", ("spothedge", "even_spread"))
    assert results["even_spread"][0] < results["spothedge"][0] - 0.3


def test_optimal_is_fully_available_and_no_dearer_than_spothedge_on_gcp1():
    results = one_window("gcp1", ("spothedge", "optimal"))
    assert results["optimal"][0] == 1.0
    assert results["optimal"][1] <= results["spothedge"][1]
