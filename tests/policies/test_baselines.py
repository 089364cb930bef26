import pytest

from policies.registry import make_policy
from policies.spot_only import SpotOnlyState
from policies.static_mix import static_split
from policies.types import LocationEventKind, PlacementConfig
from tests.policies.builders import A, B, C, event, inp, offer, replica

SPOT_ONLY = PlacementConfig(use_spot=True)


def launched_at(plan):
    return [launch.location for launch in plan.launches]


def test_even_spread_relaunches_where_fewest_replicas_run():
    policy = make_policy("even_spread")
    running = (replica(1, A), replica(2, A), replica(3, C))
    plan, _ = policy.plan(inp(target=4, replicas=running, config=SPOT_ONLY), policy.initial_state())
    assert launched_at(plan) == [B]


def test_even_spread_keeps_relaunching_in_the_zone_that_lost_capacity():
    policy = make_policy("even_spread")
    running = (replica(2, B), replica(3, C))
    world = inp(target=3, replicas=running, config=SPOT_ONLY, now=60.0)
    plan, _ = policy.plan(world, SpotOnlyState(hold_until=0.0))
    assert launched_at(plan) == [A]


def test_spot_only_baselines_wait_a_tick_after_a_refused_launch():
    policy = make_policy("even_spread")
    refused = (event(LocationEventKind.LAUNCH_REFUSED, A, at=30.0),)
    plan, state = policy.plan(
        inp(
            target=3,
            replicas=(replica(2, B), replica(3, C)),
            config=SPOT_ONLY,
            now=30.0,
            events=refused,
        ),
        policy.initial_state(),
    )
    assert plan.launches == ()
    plan, _ = policy.plan(
        inp(target=3, replicas=(replica(2, B), replica(3, C)), config=SPOT_ONLY, now=60.0), state
    )
    assert launched_at(plan) == [A]


def test_round_robin_places_each_new_replica_in_the_next_zone():
    policy = make_policy("round_robin")
    plan, state = policy.plan(inp(target=2, config=SPOT_ONLY), policy.initial_state())
    assert launched_at(plan) == [A, B]
    plan, _ = policy.plan(inp(target=2, replicas=(replica(2, B),), config=SPOT_ONLY), state)
    assert launched_at(plan) == [C]


def test_spot_only_baselines_do_not_overprovision_by_default():
    policy = make_policy("round_robin")
    config = PlacementConfig(use_spot=True, num_overprovision=2)
    plan, _ = policy.plan(inp(target=2, config=config), policy.initial_state())
    assert len(plan.launches) == 2


def test_spot_only_baselines_overprovision_when_asked():
    policy = make_policy("even_spread", overprovision=True)
    config = PlacementConfig(use_spot=True, num_overprovision=2)
    plan, _ = policy.plan(inp(target=2, config=config), policy.initial_state())
    assert len(plan.launches) == 4


def test_on_demand_policy_keeps_target_on_demand_in_the_cheapest_location():
    offers = (offer(A, on_demand=4.0), offer(B, on_demand=2.5))
    policy = make_policy("on_demand")
    plan, _ = policy.plan(inp(target=3, offers=offers), policy.initial_state())
    assert [(launch.location, launch.spot) for launch in plan.launches] == [(B, False)] * 3


def test_on_demand_policy_fails_over_when_a_location_refuses():
    offers = (offer(A, on_demand=2.0), offer(B, on_demand=3.0))
    policy = make_policy("on_demand")
    refused = (event(LocationEventKind.LAUNCH_REFUSED, A, at=1000.0, spot=False),)
    plan, _ = policy.plan(inp(target=1, offers=offers, events=refused), policy.initial_state())
    assert launched_at(plan) == [B]


@pytest.mark.parametrize(
    ("target", "base", "percentage", "split"),
    [(3, 1, 0.0, (1, 2)), (5, 1, 50.0, (3, 2)), (4, 0, 100.0, (4, 0)), (2, 3, 0.0, (2, 0))],
)
def test_static_mix_splits_like_an_auto_scaling_group(target, base, percentage, split):
    assert static_split(target, base, percentage) == split


def test_static_mix_launches_its_base_on_demand_and_spreads_spot():
    policy = make_policy("static_mix", on_demand_base=1)
    plan, _ = policy.plan(inp(target=3, config=SPOT_ONLY), policy.initial_state())
    assert sorted((launch.spot, launch.location.key) for launch in plan.launches) == [
        (False, A.key),
        (True, A.key),
        (True, B.key),
    ]


def test_unknown_policy_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="spothedge"):
        make_policy("cheapest")


def test_unknown_option_names_the_policy():
    with pytest.raises(TypeError, match="round_robin"):
        make_policy("round_robin", colour="red")


def test_optimal_without_the_trace_says_where_it_can_be_used():
    with pytest.raises(RuntimeError, match="serve simulate"):
        make_policy("optimal")
