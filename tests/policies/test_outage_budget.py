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
    budget = run(budget, budget.as_of or 0.0, at, WANTED)
    budget = run(budget, at, at + seconds, WANTED - 1)
    return budget.observe(at + seconds, WANTED, WANTED, GOAL, H)


def test_a_99_5_target_with_six_hours_half_life_allows_156_seconds():
    assert math.isclose(allowed_outage(0.995, H), 155.8, abs_tol=0.1)


def test_the_first_cold_start_is_not_an_outage():
    budget = run(OutageBudget(), 0.0, 600.0, 0)
    assert budget.at(600.0, H) == 0.0 and budget.met == 0
    budget = run(budget, 600.0, 700.0, WANTED)
    budget = run(budget, 700.0, 900.0, WANTED - 1)
    assert budget.met == WANTED and math.isclose(budget.at(900.0, H), 200.0, rel_tol=0.01)


def test_a_scale_up_is_not_an_outage_a_loss_below_what_served_is():
    budget = run(met(), 0.0, 600.0, WANTED)
    budget = run(budget, 600.0, 900.0, WANTED, wanted=6)  # three new replicas start
    assert budget.at(900.0, H) == 0.0
    budget = run(budget, 900.0, 1200.0, WANTED - 1, wanted=6)  # one that served is lost
    assert math.isclose(budget.at(1200.0, H), 300.0, rel_tol=0.01)
    budget = run(budget, 1200.0, 1500.0, 6, wanted=6)
    budget = run(budget, 1500.0, 1800.0, 4, wanted=3)  # scaled down: 3 are enough
    assert budget.met == 3 and not budget.short


def test_one_lost_zone_is_within_the_budget_a_second_soon_after_is_not():
    budget = lose(met(), at=3600.0)
    assert math.isclose(budget.at(3720.0, H), 120.0, rel_tol=0.01)
    assert not budget.protecting
    budget = lose(budget, at=3600.0 + 1800.0)
    assert budget.protecting


def test_protection_lasts_until_the_outage_has_faded_to_half_the_budget():
    budget = lose(lose(met(), at=3600.0), at=5400.0)
    assert budget.protecting
    start = budget.as_of
    assert start is not None
    peak = budget.at(start, H)
    expected = start + H * math.log2(peak / (allowed_outage(GOAL, H) / 2))
    budget = run(budget, start + TICK, expected - 600.0, WANTED)
    assert budget.protecting
    budget = run(budget, expected - 600.0, expected + 600.0, WANTED)
    assert not budget.protecting


def test_without_a_goal_nothing_is_tracked_or_protected():
    budget = met()
    for t in range(30, 7200, 30):
        budget = budget.observe(float(t), 1, WANTED, None, H)
    assert budget == OutageBudget() and not budget.protecting


def test_the_state_changes_only_when_the_service_does():
    """So a policy state holding it is written on transitions, not every tick."""
    budget = run(met(), 0.0, 3600.0, WANTED)
    assert budget.as_of == 0.0
    short = budget.observe(3600.0, WANTED - 1, WANTED, GOAL, H)
    assert short.short_since == 3600.0
    assert short.observe(3630.0, WANTED - 1, WANTED, GOAL, H) is short
    whole = short.observe(3720.0, WANTED, WANTED, GOAL, H)
    assert whole.short_since is None and math.isclose(whole.outage, 120.0, rel_tol=0.01)


def test_the_outage_of_a_stretch_is_its_seconds_weighted_by_age():
    """Integrated exactly: a stretch of one half-life weighs h / (2 ln 2), a long one tends to
    h / ln 2 (the budget of a service always short)."""
    short = met().observe(0.0, WANTED - 1, WANTED, GOAL, H)
    assert math.isclose(short.at(H, H), H / (2 * math.log(2)), rel_tol=1e-9)
    assert math.isclose(short.at(50 * H, H), H / math.log(2), rel_tol=1e-9)


@given(
    outage=st.floats(0, 1e6),
    as_of=st.one_of(st.none(), st.floats(0, 1e9)),
    since=st.one_of(st.none(), st.floats(0, 1e9)),
    was_met=st.integers(0, 100),
    protecting=st.booleans(),
)
def test_round_trips_through_json(outage, as_of, since, was_met, protecting):
    budget = OutageBudget(outage, as_of, since, was_met, protecting)
    assert OutageBudget.from_json(json.loads(json.dumps(budget.to_json()))) == budget
