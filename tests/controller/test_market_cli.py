"""`serve market ...` against a running controller."""

from __future__ import annotations

import json

from policies.simulation.traces import shared_dir
from tests.support.processes import ControllerProcess


def test_market_show_lists_the_default_zones(sqlite_controller: ControllerProcess) -> None:
    out = sqlite_controller.env.serve("market", "show", "--json")
    assert out.returncode == 0, out.stderr
    zones = json.loads(out.stdout)["zones"]
    assert [z["zone"] for z in zones] == ["local-a", "local-b", "local-c"]
    assert all(z["spot_capacity"] is None for z in zones)


def test_market_set_changes_capacity_and_prices(sqlite_controller: ControllerProcess) -> None:
    env = sqlite_controller.env
    out = env.serve(
        "market", "set", "local-b", "--spot-capacity", "2", "--spot-price", "0.4", "--json"
    )
    assert out.returncode == 0, out.stderr
    b = next(z for z in json.loads(out.stdout)["zones"] if z["zone"] == "local-b")
    assert (b["spot_capacity"], b["spot_price"], b["on_demand_price"]) == (2, 0.4, 3.0)


def test_market_set_without_a_change_says_what_to_give(
    sqlite_controller: ControllerProcess,
) -> None:
    out = sqlite_controller.env.serve("market", "set", "local-a")
    assert out.returncode != 0 and "--spot-capacity" in out.stderr


def test_market_replays_a_trace(sqlite_controller: ControllerProcess) -> None:
    env = sqlite_controller.env
    trace = shared_dir() / "traces" / "aws3-first-half"
    if not trace.is_dir():
        import pytest

        pytest.skip(f"{trace} is absent: set SERVE_SHARED_DIR to the shared data folder")
    assert env.serve("market", "replay", str(trace), "--speedup", "600").returncode == 0
    market = json.loads(env.serve("market", "show", "--json").stdout)
    assert market["driver"]["mode"] == "trace"
    assert len(market["zones"]) == 9, "one local zone per trace zone"
    assert {z["spot_capacity"] for z in market["zones"]} <= {None, 0}


def test_market_replay_of_a_bad_trace_names_the_problem(
    sqlite_controller: ControllerProcess, tmp_path
) -> None:
    (tmp_path / "us-east-1a_v100_1.json").write_text("{not json")
    out = sqlite_controller.env.serve("market", "replay", str(tmp_path))
    assert out.returncode != 0 and "us-east-1a_v100_1.json" in out.stderr
