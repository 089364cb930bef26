"""Simulator runs on hand-written traces whose results are worked out by hand.

Settings: 30 s ticks, 120 s cold start (4 ticks), so ticks 0-3 are not measured; on-demand
costs 3, spot 1; relative cost = cost / (target * 3 * measured ticks).
"""

import pytest

from policies.optimal import OptimalProblem, solve_optimal
from policies.registry import make_policy
from policies.simulation.engine import SimSettings, run_window
from tests.policies.trace_files import capacity_and_offers, write_trace

T = 20


def settings(target=3, overprovision=1, preemption="newest"):
    return SimSettings(target=target, overprovision=overprovision, preemption=preemption)


def test_on_demand_costs_exactly_the_reference_and_is_always_available(tmp_path):
    cap, offers = capacity_and_offers(write_trace(tmp_path, {"us-east-1a": [4] * T}))
    result = run_window(make_policy("on_demand"), cap, offers, settings())
    assert (result.relative_cost, result.availability) == (1.0, 1.0)


def test_spothedge_fails_over_from_a_zone_without_capacity_and_drops_its_fallback(tmp_path):
    zones = {"us-east-1a": [0] * T, "us-east-1b": [9] * T, "us-west-2a": [9] * T}
    cap, offers = capacity_and_offers(write_trace(tmp_path, zones))
    result = run_window(make_policy("spothedge"), cap, offers, settings())
    # 4 spot replicas ready at tick 4, the 3 on-demand fallbacks stopped then: 4 / 9 per tick.
    assert result.availability == 1.0
    assert result.relative_cost == pytest.approx(4 / 9)
    assert result.refused_launches == 2


def test_even_spread_keeps_retrying_the_empty_zone(tmp_path):
    zones = {"us-east-1a": [0] * T, "us-east-1b": [9] * T, "us-west-2a": [9] * T}
    cap, offers = capacity_and_offers(write_trace(tmp_path, zones))
    result = run_window(make_policy("even_spread"), cap, offers, settings(overprovision=0))
    assert result.availability == 0.0
    assert result.relative_cost == pytest.approx(2 / 9)


def test_capacity_drop_preempts_the_newest_replica(tmp_path):
    cap, offers = capacity_and_offers(write_trace(tmp_path, {"us-east-1a": [2] * 10 + [1] * 10}))
    result = run_window(
        make_policy("even_spread"), cap, offers, settings(target=2, overprovision=0)
    )
    # ready from tick 4; from tick 10 only one survives: 6 of 16 measured ticks available.
    assert result.preemptions == 1
    assert result.availability == pytest.approx(6 / 16)
    assert result.relative_cost == pytest.approx((6 * 2 + 10 * 1) / (2 * 3 * 16))
    lost = [s for s in result.spans if s.lost]
    assert [s.replica_id for s in lost] == [2]


def test_random_preemption_is_repeatable_with_the_same_seed(tmp_path):
    cap, offers = capacity_and_offers(write_trace(tmp_path, {"us-east-1a": [3] * 10 + [1] * 10}))
    runs = [
        run_window(
            make_policy("even_spread"),
            cap,
            offers,
            settings(target=3, overprovision=0, preemption="random"),
            seed=7,
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_optimal_prelaunches_just_in_time_for_a_capacity_loss(tmp_path):
    zones = {"us-east-1a": [1] * 20 + [0] * 10, "us-east-1b": [0] * 10 + [1] * 20}
    cap, offers = capacity_and_offers(write_trace(tmp_path, zones))
    problem = OptimalProblem(
        locations=tuple(o.location for o in offers),
        capacity=cap,
        tick_seconds=30.0,
        cold_start_ticks=4,
        target=1,
        per_location=2,
        spot_prices=(1.0, 1.0),
        on_demand_price=3.0,
        measure_from=4,
    )
    policy = make_policy("optimal", schedule=solve_optimal(problem))
    result = run_window(policy, cap, offers, settings(target=1))
    # zone a serves ticks 4-19; zone b launched at tick 16 is ready at 20: 16 + 14 spot ticks.
    assert result.availability == 1.0
    assert result.relative_cost == pytest.approx(30 / (3 * 26))


def test_optimal_uses_on_demand_only_while_no_spot_can_be_had(tmp_path):
    zones = {"us-east-1a": [0] * 10 + [1] * 20}
    cap, offers = capacity_and_offers(write_trace(tmp_path, zones))
    problem = OptimalProblem(
        locations=tuple(o.location for o in offers),
        capacity=cap,
        tick_seconds=30.0,
        cold_start_ticks=4,
        target=1,
        per_location=2,
        spot_prices=(1.0,),
        on_demand_price=3.0,
        measure_from=4,
    )
    result = run_window(
        make_policy("optimal", schedule=solve_optimal(problem)), cap, offers, settings(target=1)
    )
    # on-demand ticks 4-13 (until the spot replica launched at 10 is ready), spot 10-29.
    assert result.availability == 1.0
    assert result.relative_cost == pytest.approx((10 * 3 + 20) / (3 * 26))
