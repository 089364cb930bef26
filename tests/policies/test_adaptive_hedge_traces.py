"""adaptive_hedge against SpotHedge with the paper's setup (10 x 24 h windows, seed 0) on the
traces its parameters were chosen on (aws1, gcp1). The out-of-sample traces and the notices
are in benchmarks/policy/compare_hedge.py and HEDGE.md."""

import pytest

from policies.simulation.engine import SimSettings
from policies.simulation.experiment import ExperimentSpec, run_experiment
from policies.simulation.traces import load_trace, shared_dir

TRACES = shared_dir() / "traces"
Figures = dict[str, tuple[float, float]]


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


def test_more_available_and_cheaper_than_spothedge_on_aws1():
    results = paper_setup("aws1")
    assert results["adaptive_hedge"][0] >= results["spothedge"][0]
    assert results["adaptive_hedge"][1] < results["spothedge"][1]


def test_cheaper_than_spothedge_and_above_99_5_percent_on_gcp1():
    results = paper_setup("gcp1")
    assert results["adaptive_hedge"][0] >= 0.995
    assert results["adaptive_hedge"][1] < results["spothedge"][1] - 0.03


@pytest.mark.xfail(
    strict=True,
    reason="issue 17's bar is not met: aws1 99.49% (< 99.5%), gcp1 99.78% (< SpotHedge's "
    "99.86%); see benchmarks/policy/HEDGE.md",
)
@pytest.mark.parametrize("name", ["aws1", "gcp1"])
def test_meets_the_issue_targets(name):
    results = paper_setup(name)
    assert results["adaptive_hedge"][0] >= max(0.995, results["spothedge"][0])
    assert results["adaptive_hedge"][1] <= results["spothedge"][1]
