"""The availability target's error budget: what counts as outage, when protection starts and
when it ends (policies/outage_budget.py)."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from policies.outage_budget import DEFAULT_HALF_LIFE, OutageBudget, allowed_outage

H = DEFAULT_HALF_LIFE
GOAL = 0.995
TICK = 30.0
WANTED = 3


def run(
    budget: OutageBudget, start: float, end: float, serving: int, wanted: int = WANTED
) -> OutageBudget:
    """Observe every tick from `start` to `end` (exclusive)."""
    t = start
    while t < end:
        budget = budget.observe(t, serving, wanted, GOAL, H)
        t += TICK
    return budget


def met(now: float = 0.0) -> OutageBudget:
    return OutageBudget().observe(now, WANTED, WANTED, GOAL, H)


def lose(budget: OutageBudget, at: float, seconds: float = 120.0) -> OutageBudget:
    """A loss at `at`: one replica short for `seconds` (one cold start), then whole again."""
    budget = run(budget, budget.seen_at or 0.0, at, WANTED)
    budget = run(budget, at, at + seconds, WANTED - 1)
    return budget.observe(at + seconds, WANTED, WANTED, GOAL, H)


def test_a_99_5_target_with_six_hours_half_life_allows_156_seconds():
    assert math.isclose(allowed_outage(0.995, H), 155.8, abs_tol=0.1)


def test_the_first_cold_start_is_not_an_outage():
    budget = run(OutageBudget(), 0.0, 600.0, 0)
    assert budget.outage == 0.0 and budget.met == 0
    budget = run(budget, 600.0, 700.0, WANTED)
    budget = run(budget, 700.0, 900.0, WANTED - 1)
    assert budget.met == WANTED and math.isclose(budget.outage, 180.0, rel_tol=0.01)


def test_a_scale_up_is_not_an_outage_a_loss_below_what_served_is():
    budget = run(met(), 0.0, 600.0, WANTED)
    budget = run(budget, 600.0, 900.0, WANTED, wanted=6)  # three new replicas start
    assert budget.outage == 0.0
    budget = run(budget, 900.0, 1200.0, WANTED - 1, wanted=6)  # one that served is lost
    assert math.isclose(budget.outage, 270.0, rel_tol=0.01)  # observed 900 s to 1170 s
    budget = run(budget, 1200.0, 1500.0, 6, wanted=6)
    budget = run(budget, 1500.0, 1800.0, 4, wanted=3)  # scaled down: 3 are enough
    assert budget.met == 3 and not budget.short


def test_one_lost_zone_is_within_the_budget_a_second_soon_after_is_not():
    budget = lose(met(), at=3600.0)
    assert math.isclose(budget.outage, 120.0, rel_tol=0.01)
    assert not budget.protecting
    budget = lose(budget, at=3600.0 + 1800.0)
    assert budget.protecting


def test_protection_lasts_until_the_outage_has_faded_to_half_the_budget():
    budget = lose(lose(met(), at=3600.0), at=5400.0)
    assert budget.protecting
    start, peak = budget.seen_at, budget.outage
    assert start is not None
    expected = start + H * math.log2(peak / (allowed_outage(GOAL, H) / 2))
    budget = run(budget, start + TICK, expected - 600.0, WANTED)
    assert budget.protecting
    budget = run(budget, expected - 600.0, expected + 600.0, WANTED)
    assert not budget.protecting


def test_without_a_goal_nothing_is_ever_protected():
    budget = met()
    for t in range(30, 7200, 30):
        budget = budget.observe(float(t), 1, WANTED, None, H)
    assert budget.outage > 1000.0 and not budget.protecting


def test_several_observations_in_one_instant_count_the_time_once():
    budget = lose(met(), at=3600.0)
    again = budget.observe(budget.seen_at or 0.0, WANTED - 1, WANTED, GOAL, H)
    assert again.outage == budget.outage and again.short


@given(
    outage=st.floats(0, 1e6),
    seen=st.one_of(st.none(), st.floats(0, 1e9)),
    short=st.booleans(),
    was_met=st.integers(0, 100),
    protecting=st.booleans(),
)
def test_round_trips_through_json(outage, seen, short, was_met, protecting):
    budget = OutageBudget(outage, seen, short, was_met, protecting)
    assert OutageBudget.from_json(json.loads(json.dumps(budget.to_json()))) == budget
