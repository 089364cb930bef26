"""Preemption notices in the simulator: the replica serves until its notice ends and its
replacement starts at the notice (30 s ticks, 120 s cold start = 4 ticks)."""

from dataclasses import replace

import pytest

from policies.registry import make_policy
from policies.simulation.engine import SimSettings, run_window
from tests.policies.trace_files import capacity_and_offers, write_trace

T = 20
ONE = SimSettings(target=1, overprovision=0)


def zone_lost_at_tick_10(tmp_path):
    zones = {"us-east-1a": [9] * 10 + [0] * 10, "us-west-2a": [9] * T}
    return capacity_and_offers(write_trace(tmp_path, zones))


def test_without_notice_the_replacement_cold_start_is_an_outage(tmp_path):
    cap, offers = zone_lost_at_tick_10(tmp_path)
    result = run_window(make_policy("spothedge"), cap, offers, ONE)
    assert result.preemptions == 1
    assert result.availability == pytest.approx(12 / 16)  # ticks 10-13 wait for a cold start


@pytest.mark.parametrize("policy", ["spothedge", "adaptive_hedge"])
def test_a_notice_as_long_as_the_cold_start_hides_the_preemption(tmp_path, policy):
    cap, offers = zone_lost_at_tick_10(tmp_path)
    result = run_window(make_policy(policy), cap, offers, replace(ONE, notice_seconds=120))
    assert result.preemptions == 1
    assert result.availability == 1.0
    lost = [s for s in result.spans if s.lost]
    assert [s.ended_at for s in lost] == [10 * 30.0]  # taken when the notice ran out


def test_a_shorter_notice_shortens_the_outage(tmp_path):
    cap, offers = zone_lost_at_tick_10(tmp_path)
    result = run_window(make_policy("spothedge"), cap, offers, replace(ONE, notice_seconds=60))
    assert result.availability == pytest.approx(14 / 16)


def test_no_notice_is_the_plain_model(tmp_path):
    cap, offers = zone_lost_at_tick_10(tmp_path)
    plain = run_window(make_policy("spothedge"), cap, offers, ONE)
    zero = run_window(make_policy("spothedge"), cap, offers, replace(ONE, notice_seconds=0))
    assert plain == zero
