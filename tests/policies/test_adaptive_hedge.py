"""adaptive_hedge: the hedge follows the risk, spot is spread and rebalanced, state persists."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.adaptive_hedge import AdaptiveHedgePolicy, AdaptiveHedgeState
from policies.types import LocationEventKind, Plan
from tests.policies.builders import SPOTHEDGE, A, B, C, event, inp, replica
from tests.policies.test_policy_properties import worlds

HOUR = 3600.0
P = LocationEventKind.PREEMPTED


def spot_launches(plan: Plan) -> int:
    return sum(1 for launch in plan.launches if launch.spot)


def calm_state(policy: AdaptiveHedgePolicy, now: float) -> AdaptiveHedgeState:
    """A policy that started long ago and has seen no preemption since."""
    _, state = policy.plan(inp(target=3, now=now - 48 * HOUR), policy.initial_state())
    return state


def three_ready() -> tuple:
    return (replica(1, A), replica(2, B), replica(3, C))


def test_no_extra_spot_replica_in_a_calm_market():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    plan, _ = policy.plan(inp(target=3, replicas=three_ready(), now=now), calm_state(policy, now))
    assert plan.spot_target == 3
    assert spot_launches(plan) == 0


def test_a_fresh_policy_hedges_before_it_has_seen_the_market():
    policy = AdaptiveHedgePolicy()
    plan, _ = policy.plan(inp(target=3, replicas=three_ready()), policy.initial_state())
    assert plan.spot_target == 4


def test_the_hedge_is_kept_for_half_a_day_after_a_preemption_then_dropped():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    state = calm_state(policy, now)
    hit = (event(P, A, now),)
    _, state = policy.plan(inp(target=3, replicas=three_ready(), now=now, events=hit), state)
    plan, state = policy.plan(inp(target=3, replicas=three_ready(), now=now + HOUR), state)
    assert plan.spot_target == 4
    plan, state = policy.plan(inp(target=3, replicas=three_ready(), now=now + 12 * HOUR), state)
    assert plan.spot_target == 4  # risk 1/8 of a preemption: not calm yet
    plan, _ = policy.plan(inp(target=3, replicas=three_ready(), now=now + 14 * HOUR), state)
    assert plan.spot_target == 3


def test_on_demand_stands_in_for_the_hedge_only_for_a_while_after_a_storm():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    state = calm_state(policy, now)
    storm = tuple(event(P, loc, now) for loc in (A, B, C))
    _, state = policy.plan(inp(target=3, now=now, events=storm), state)
    # spot is back to the target but the hedge cannot be had: on-demand covers it for 30 min
    plan, state = policy.plan(inp(target=3, replicas=three_ready(), now=now + 600), state)
    assert plan.on_demand_target == 1
    plan, _ = policy.plan(inp(target=3, replicas=three_ready(), now=now + 2000), state)
    assert plan.on_demand_target == 0 and plan.spot_target == 4


def test_with_a_volatile_threshold_the_hedge_grows_with_preemptions_and_shrinks():
    policy = AdaptiveHedgePolicy(
        half_life=HOUR, calm_risk=0.05, volatile_risk=2.0, hot_risk=math.inf, diversify=False
    )
    now = 100 * HOUR
    state = calm_state(policy, now)
    storm = tuple(event(P, loc, now) for loc in (A, B, C))
    plan, state = policy.plan(inp(target=3, replicas=three_ready(), now=now, events=storm), state)
    assert plan.spot_target == 5  # volatile: max(1, E) + 1 extra
    plan, state = policy.plan(inp(target=3, replicas=three_ready(), now=now + 2 * HOUR), state)
    assert plan.spot_target == 4  # risk 3/4: one extra
    plan, _ = policy.plan(inp(target=3, replicas=three_ready(), now=now + 10 * HOUR), state)
    assert plan.spot_target == 3  # calm again: none


def test_new_spot_replicas_avoid_the_zone_that_just_preempted():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    state = calm_state(policy, now)
    plan, _ = policy.plan(
        inp(target=3, replicas=(replica(1, B), replica(2, C)), now=now, events=(event(P, A, now),)),
        state,
    )
    assert plan.launches and all(launch.location != A for launch in plan.launches if launch.spot)


def test_a_zone_holding_most_replicas_is_relieved_make_before_break():
    policy = AdaptiveHedgePolicy(rebalance=True)
    now = 100 * HOUR
    state = calm_state(policy, now)
    crowded = (replica(1, A), replica(2, A), replica(3, A, launched_at=50.0))
    plan, state = policy.plan(inp(target=3, replicas=crowded, now=now), state)
    assert plan.terminations == ()
    assert [launch.location for launch in plan.launches] in ([B], [C])
    moved_to = plan.launches[0].location
    starting = (*crowded, replica(4, moved_to, ready=False))
    plan, state = policy.plan(inp(target=3, replicas=starting, now=now + 30), state)
    assert plan.terminations == () and plan.launches == ()  # wait until it is ready
    ready = (*crowded, replica(4, moved_to))
    plan, _ = policy.plan(inp(target=3, replicas=ready, now=now + 150), state)
    assert plan.terminations == (3,)  # the newest of the fullest zone


def test_on_demand_fallback_is_kept_until_spot_is_stable_when_asked():
    policy = AdaptiveHedgePolicy(stable_seconds=HOUR)
    now = 100 * HOUR
    state = calm_state(policy, now)
    _, state = policy.plan(inp(target=3, now=now, events=(event(P, A, now),)), state)
    back = (*three_ready(), replica(9, A, spot=False))
    plan, state = policy.plan(inp(target=3, replicas=back, now=now + 600), state)
    assert 9 not in plan.terminations and plan.on_demand_target == 1
    plan, _ = policy.plan(inp(target=3, replicas=back, now=now + 2 * HOUR), state)
    assert 9 in plan.terminations


def test_without_the_hold_on_demand_goes_as_soon_as_spot_covers_the_target():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    state = calm_state(policy, now)
    back = (*three_ready(), replica(9, A, spot=False))
    plan, _ = policy.plan(inp(target=3, replicas=back, now=now), state)
    assert 9 in plan.terminations


@settings(max_examples=200, deadline=None)
@given(world=worlds)
def test_is_deterministic(world):
    policy = AdaptiveHedgePolicy()
    assert policy.plan(world, policy.initial_state()) == policy.plan(world, policy.initial_state())


@settings(max_examples=200, deadline=None)
@given(world=worlds, later=st.floats(0, 10_000))
def test_state_round_trips_through_json_and_plans_the_same(world, later):
    import json

    policy = AdaptiveHedgePolicy()
    _, state = policy.plan(world, policy.initial_state())
    restored = policy.state_from_dict(json.loads(json.dumps(policy.state_to_dict(state))))
    assert restored == state
    nxt = inp(target=world.target, offers=world.offers, now=world.now + later)
    assert policy.plan(nxt, restored) == policy.plan(nxt, state)


def crowded_in_a() -> tuple:
    """Three ready spot replicas left in A (which just preempted one) and one in B."""
    return (replica(1, A), replica(2, A), replica(3, A), replica(4, B))


def test_a_hot_zone_is_one_failure_domain_covered_by_on_demand_standby():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    state = calm_state(policy, now)
    hit = (event(P, A, now),)
    plan, state = policy.plan(inp(target=3, replicas=crowded_in_a(), now=now, events=hit), state)
    # losing A's 3 ready replicas would leave 1: 2 on-demand keep the target
    assert plan.on_demand_target == 2
    assert sum(1 for launch in plan.launches if not launch.spot) == 2
    plan, _ = policy.plan(inp(target=3, replicas=crowded_in_a(), now=now + HOUR), state)
    assert plan.on_demand_target == 0  # A has cooled down: no standby


def test_a_standby_with_a_spare_covers_all_but_one_of_the_hot_zone():
    policy = AdaptiveHedgePolicy(hot_risk=0.5, hot_half_life=300.0, standby_spare=1)
    now = 100 * HOUR
    state = calm_state(policy, now)
    hit = (event(P, A, now),)
    plan, _ = policy.plan(inp(target=3, replicas=crowded_in_a(), now=now, events=hit), state)
    # losing 2 of A's 3 ready replicas would leave 2: 1 on-demand keeps the target
    assert plan.on_demand_target == 1


def test_without_the_standby_a_crowded_hot_zone_gets_no_on_demand():
    policy = AdaptiveHedgePolicy(hot_risk=math.inf)
    now = 100 * HOUR
    state = calm_state(policy, now)
    hit = (event(P, A, now),)
    plan, _ = policy.plan(inp(target=3, replicas=crowded_in_a(), now=now, events=hit), state)
    assert plan.on_demand_target == 0


def test_diversify_launches_spot_outside_the_hot_zone_and_can_drop_the_hedge():
    policy = AdaptiveHedgePolicy(
        hot_risk=0.5, hot_half_life=300.0, diversify=True, standby_drops_hedge=True
    )
    now = 100 * HOUR
    state = calm_state(policy, now)
    hit = (event(P, A, now),)
    plan, _ = policy.plan(inp(target=3, replicas=crowded_in_a(), now=now, events=hit), state)
    assert plan.spot_target == 3 + 3  # the target (no hedge) plus A's 3 exposed replicas
    spot = [launch.location for launch in plan.launches if launch.spot]
    assert spot and A not in spot


def test_hot_table_round_trips_through_json():
    policy = AdaptiveHedgePolicy(hot_risk=0.5)
    now = 100 * HOUR
    _, state = policy.plan(
        inp(target=3, now=now, events=(event(P, A, now),)), calm_state(policy, now)
    )
    assert state.hot
    assert policy.state_from_dict(policy.state_to_dict(state)) == state


TARGETED = replace(SPOTHEDGE, availability_target=0.995)


def two_losses(policy: AdaptiveHedgePolicy, now: float) -> AdaptiveHedgeState:
    """A service serving since long ago loses zone A at `now` and again 30 minutes later,
    each time short for one cold start (2 minutes)."""
    serving = inp(3, replicas=three_ready(), config=TARGETED, now=now - 48 * HOUR)
    _, state = policy.plan(serving, policy.initial_state())
    for at in (now, now + 1800):
        rest = (replica(2, B), replica(3, C))
        lost = inp(3, replicas=rest, config=TARGETED, now=at, events=(event(P, A, at),))
        _, state = policy.plan(lost, state)
        _, state = policy.plan(inp(3, replicas=three_ready(), config=TARGETED, now=at + 120), state)
    return state


def test_an_availability_target_turns_a_rough_market_into_on_demand_make_before_break():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    state = two_losses(policy, now)
    at = now + 1800 + 150
    plan, state = policy.plan(inp(3, replicas=three_ready(), config=TARGETED, now=at), state)
    assert plan.on_demand_target == 3 and plan.spot_target == 3
    assert sum(1 for launch in plan.launches if not launch.spot) == 3
    assert spot_launches(plan) == 0 and plan.terminations == ()  # spot serves meanwhile
    assert "above the 99.5% availability target" in plan.on_demand_reason
    on_demand = tuple(replica(10 + i, A, spot=False) for i in range(3))
    plan, _ = policy.plan(
        inp(3, replicas=(*three_ready(), *on_demand), config=TARGETED, now=at + 150), state
    )
    assert sorted(plan.terminations) == [1, 2, 3] and plan.spot_target == 0


def test_spot_returns_once_the_outage_has_faded_and_on_demand_waits_for_it():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    state = two_losses(policy, now)
    on_demand = tuple(replica(10 + i, A, spot=False) for i in range(3))
    plan, state = policy.plan(inp(3, replicas=on_demand, config=TARGETED, now=now + HOUR), state)
    assert plan.on_demand_reason and plan.spot_target == 0
    later = now + 12 * HOUR  # 233 s of outage fades to half the 156 s budget in 9.5 hours
    plan, _ = policy.plan(inp(3, replicas=on_demand, config=TARGETED, now=later), state)
    assert plan.on_demand_reason == "" and spot_launches(plan) == plan.spot_target >= 3
    assert plan.on_demand_target == 3 and plan.terminations == ()


def test_without_a_target_the_same_losses_keep_spot():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    _, state = policy.plan(
        inp(3, replicas=three_ready(), now=now - 48 * HOUR), policy.initial_state()
    )
    for at in (now, now + 1800):
        rest = (replica(2, B), replica(3, C))
        _, state = policy.plan(inp(3, replicas=rest, now=at, events=(event(P, A, at),)), state)
        _, state = policy.plan(inp(3, replicas=three_ready(), now=at + 120), state)
    plan, _ = policy.plan(inp(3, replicas=three_ready(), now=now + 1950), state)
    assert plan.on_demand_reason == "" and plan.spot_target >= 3 and plan.terminations == ()


def test_a_replica_serving_out_its_notice_is_no_outage():
    policy = AdaptiveHedgePolicy()
    now = 100 * HOUR
    serving = inp(3, replicas=three_ready(), config=TARGETED, now=now - HOUR)
    _, state = policy.plan(serving, policy.initial_state())
    rest = (replica(2, B), replica(3, C))
    noticed = replace(inp(3, replicas=rest, config=TARGETED, now=now), serving_on_notice=1)
    _, state = policy.plan(noticed, state)
    _, state = policy.plan(replace(noticed, now=now + 120), state)
    half_life = policy.params.budget_half_life
    assert state.budget.at(now + 120, half_life) == 0.0
    _, state = policy.plan(inp(3, replicas=rest, config=TARGETED, now=now + 150), state)
    _, state = policy.plan(inp(3, replicas=rest, config=TARGETED, now=now + 180), state)
    outage = state.budget.at(now + 180, half_life)
    assert math.isclose(outage, 30.0, rel_tol=1e-3)  # the notice ran out: now it is short
