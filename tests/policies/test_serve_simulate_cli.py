"""`serve simulate` run as a user runs it: a real process, JSON on stdout."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.policies.trace_files import write_trace

ROOT = Path(__file__).resolve().parents[2]


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", "from controller.cli import main; main()", "simulate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def steady_trace(tmp_path: Path) -> Path:
    hour = 120  # ticks of 30 s
    return write_trace(
        tmp_path / "mine",
        {
            "us-east-1a": [4] * 3 * hour,
            "us-east-1b": [0] * hour + [4] * 2 * hour,
            "us-west-2a": [4] * 3 * hour,
        },
    )


def test_json_has_one_entry_per_policy_with_cost_availability_and_latency(tmp_path):
    done = serve(
        "--trace",
        str(steady_trace(tmp_path)),
        "--policy",
        "on_demand",
        "--policy",
        "spothedge",
        "--hours",
        "1",
        "--repeats",
        "2",
        "--workload",
        "constant",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    by_name = {p["policy"]: p for p in doc["policies"]}
    assert list(by_name) == ["on_demand", "spothedge"]
    assert by_name["on_demand"]["cost_relative"] == 1.0
    assert by_name["spothedge"]["availability"] == 1.0
    assert by_name["spothedge"]["cost_relative"] < 0.6
    assert set(by_name["spothedge"]["latency"]["constant"]) >= {"p50", "p90", "p99", "failure_rate"}
    assert len(by_name["spothedge"]["runs"]) == 2


def test_malformed_trace_file_is_refused_with_its_name(tmp_path):
    folder = steady_trace(tmp_path)
    (folder / "us-west-2a_v100_1.json").write_text('{"metadata": {}, "data": [1]}')
    done = serve("--trace", str(folder), "--json")
    assert done.returncode == 2
    assert "us-west-2a_v100_1.json" in done.stderr
    assert "gap_seconds" in done.stderr


def test_window_longer_than_the_trace_is_refused(tmp_path):
    done = serve("--trace", str(steady_trace(tmp_path)), "--hours", "10", "--json")
    assert done.returncode == 2
    assert "--hours" in done.stderr


def test_unknown_policy_is_refused_with_the_known_names(tmp_path):
    done = serve("--trace", str(steady_trace(tmp_path)), "--policy", "cheapest")
    assert done.returncode == 2
    assert "spothedge" in done.stderr


def test_notice_is_applied_to_both_policies_and_reported(tmp_path):
    trace = write_trace(
        tmp_path / "drop",
        {"us-east-1a": [9] * 240 + [0] * 240, "us-west-2a": [9] * 480},
    )
    runs = {}
    for notice in ("0", "120"):
        done = serve(
            "--trace", str(trace), "--policy", "spothedge", "--policy", "adaptive_hedge",
            "--hours", "3", "--repeats", "1", "--target", "1", "--overprovision", "0",
            "--workload", "poisson", "--notice", notice, "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["settings"]["notice_seconds"] == float(notice)
        runs[notice] = {p["policy"]: p["availability"] for p in doc["policies"]}
    assert runs["120"]["spothedge"] == 1.0 > runs["0"]["spothedge"]
    assert runs["120"]["adaptive_hedge"] == 1.0


def test_an_availability_target_buys_availability_on_a_market_that_keeps_emptying_its_zone(
    tmp_path,
):
    """The only spot zone is emptied for 2 minutes every 20: each loss costs a cold start
    until the target's budget is spent, then adaptive_hedge serves from on-demand."""
    trace = write_trace(
        tmp_path / "rough",
        {"us-east-1a": ([4] * 40 + [0] * 4) * 17, "us-west-2a": [0] * 44 * 17},
    )
    runs = {}
    for target in (None, "99.5"):
        extra = () if target is None else ("--availability-target", target)
        done = serve(
            "--trace", str(trace), "--policy", "adaptive_hedge", "--hours", "6",
            "--repeats", "1", "--target", "1", "--workload", "poisson", "--json", *extra,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert doc["settings"]["availability_target"] == (None if target is None else 0.995)
        (policy,) = doc["policies"]
        runs[target] = (policy["availability"], policy["cost_relative"])
    assert runs[None][0] < 0.95  # about one cold start lost in every 22 minutes
    assert runs["99.5"][0] > 0.98  # two losses, then on-demand for the rest of the 6 hours


def test_an_availability_target_of_100_is_refused_naming_the_option(tmp_path):
    done = serve("--trace", str(steady_trace(tmp_path)), "--availability-target", "100")
    assert done.returncode == 2
    assert "--availability-target" in done.stderr
