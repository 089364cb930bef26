from collections import Counter

from policies.registry import make_policy
from policies.spothedge import SpotHedgeState
from policies.types import LocationEventKind
from tests.policies.builders import A, B, C, D, event, inp, offer, replica

PREEMPTED = LocationEventKind.PREEMPTED
REFUSED = LocationEventKind.LAUNCH_REFUSED
READY = LocationEventKind.READY


def spot_launches(plan):
    return [launch.location for launch in plan.launches if launch.spot]


def test_first_replicas_spread_over_locations_cheapest_first():
    offers = (offer(A, spot=1.2), offer(B, spot=0.9), offer(C, spot=1.0))
    policy = make_policy("spothedge")
    plan, _ = policy.plan(inp(target=2, offers=offers), policy.initial_state())
    assert spot_launches(plan) == [B, C, A]


def test_equal_prices_follow_the_preference_order():
    policy = make_policy("spothedge")
    plan, _ = policy.plan(inp(target=2), policy.initial_state())
    assert spot_launches(plan) == [A, B, C]


def test_next_replica_goes_to_cheapest_active_location_without_spot_replicas():
    policy = make_policy("spothedge")
    running = (replica(1, A), replica(2, B))
    plan, _ = policy.plan(inp(target=2, replicas=running), policy.initial_state())
    assert spot_launches(plan) == [C]


def test_when_every_active_location_hosts_a_replica_the_cheapest_active_one_gets_it():
    offers = (offer(A, spot=2.0), offer(B, spot=1.0))
    policy = make_policy("spothedge")
    running = (replica(1, A), replica(2, B))
    plan, _ = policy.plan(inp(target=2, offers=offers, replicas=running), policy.initial_state())
    assert spot_launches(plan) == [B]


def test_preempted_location_is_skipped_for_the_replacement():
    offers = (offer(A), offer(B), offer(C), offer(D))
    policy = make_policy("spothedge")
    running = (replica(2, B), replica(3, C))
    plan, state = policy.plan(
        inp(target=2, offers=offers, replicas=running, events=(event(PREEMPTED, A),)),
        policy.initial_state(),
    )
    assert state.preemptive == {A.key}
    assert spot_launches(plan) == [D]


def test_capacity_refused_launch_fails_over_to_the_next_location_in_the_same_tick():
    policy = make_policy("spothedge")
    running = (replica(2, B), replica(3, C))
    plan, _ = policy.plan(
        inp(
            target=2,
            offers=(offer(A), offer(B), offer(C), offer(D)),
            replicas=running,
            events=(event(REFUSED, A, at=1000.0),),
        ),
        policy.initial_state(),
    )
    assert spot_launches(plan) == [D]


def test_replica_becoming_ready_makes_its_location_active_again():
    policy = make_policy("spothedge")
    offers = (offer(A), offer(B), offer(C), offer(D))
    state = SpotHedgeState(preemptive=frozenset({A.key}))
    _, state = policy.plan(inp(offers=offers, events=(event(READY, A),)), state)
    assert state.preemptive == frozenset()


def test_all_locations_become_active_when_fewer_than_two_remain_active():
    policy = make_policy("spothedge")
    state = SpotHedgeState(preemptive=frozenset({A.key}))
    _, state = policy.plan(inp(events=(event(PREEMPTED, B),)), state)
    assert state.preemptive == frozenset()


def test_two_active_locations_are_enough_to_keep_the_preemptive_set():
    policy = make_policy("spothedge")
    offers = (offer(A), offer(B), offer(C), offer(D))
    _, state = policy.plan(
        inp(offers=offers, events=(event(PREEMPTED, A), event(PREEMPTED, B))),
        policy.initial_state(),
    )
    assert state.preemptive == {A.key, B.key}


def test_locations_without_spot_offers_never_get_spot_replicas():
    policy = make_policy("spothedge")
    offers = (offer(A, spot=None), offer(B), offer(C))
    plan, _ = policy.plan(inp(target=2, offers=offers), policy.initial_state())
    assert A not in spot_launches(plan)


def test_spot_replicas_spread_over_distinct_locations_while_possible():
    policy = make_policy("spothedge")
    offers = tuple(offer(loc) for loc in (A, B, C, D))
    plan, _ = policy.plan(inp(target=3, offers=offers), policy.initial_state())
    assert max(Counter(spot_launches(plan)).values()) == 1


def test_state_round_trips_through_plain_json():
    import json

    policy = make_policy("spothedge")
    _, state = policy.plan(
        inp(
            offers=(offer(A), offer(B), offer(C), offer(D)),
            events=(event(PREEMPTED, A), event(REFUSED, B, at=990.0)),
        ),
        policy.initial_state(),
    )
    data = json.loads(json.dumps(policy.state_to_dict(state)))
    assert policy.state_from_dict(data) == state
