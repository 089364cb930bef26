import pytest

from policies.registry import make_policy
from policies.types import PlacementConfig
from tests.policies.builders import A, B, C, inp, replica


def on_demand_kept(target, config, ready_spot, launching_spot=0):
    spots = tuple(replica(i, (A, B, C)[i % 3]) for i in range(ready_spot))
    spots += tuple(replica(100 + i, A, ready=False) for i in range(launching_spot))
    policy = make_policy("spothedge")
    plan, _ = policy.plan(inp(target=target, replicas=spots, config=config), policy.initial_state())
    return plan.on_demand_target, sum(1 for launch in plan.launches if not launch.spot)


DYNAMIC = PlacementConfig(use_spot=True, num_overprovision=1, dynamic_ondemand_fallback=True)


@pytest.mark.parametrize(("ready_spot", "on_demand"), [(0, 2), (1, 2), (2, 1), (3, 0)])
def test_fallback_table_for_two_targets_and_one_extra(ready_spot, on_demand):
    assert on_demand_kept(2, DYNAMIC, ready_spot) == (on_demand, on_demand)


def test_launching_spot_replicas_do_not_reduce_the_fallback():
    assert on_demand_kept(2, DYNAMIC, ready_spot=0, launching_spot=3)[0] == 2


def test_base_on_demand_replicas_are_kept_even_when_all_spot_is_ready():
    config = PlacementConfig(use_spot=True, num_overprovision=1, base_ondemand_fallback_replicas=1)
    assert on_demand_kept(2, config, ready_spot=2)[0] == 1


def test_base_replicas_replace_spot_ones_in_the_spot_target():
    config = PlacementConfig(use_spot=True, num_overprovision=1, base_ondemand_fallback_replicas=1)
    policy = make_policy("spothedge")
    plan, _ = policy.plan(inp(target=2, config=config), policy.initial_state())
    assert plan.spot_target == 2


def test_without_dynamic_fallback_only_the_base_is_on_demand():
    config = PlacementConfig(use_spot=True, num_overprovision=1, base_ondemand_fallback_replicas=1)
    assert on_demand_kept(3, config, ready_spot=0)[0] == 1


def test_base_and_dynamic_together_never_exceed_the_target():
    config = PlacementConfig(
        use_spot=True,
        num_overprovision=1,
        base_ondemand_fallback_replicas=1,
        dynamic_ondemand_fallback=True,
    )
    assert on_demand_kept(2, config, ready_spot=0)[0] == 2


def test_overprovision_keeps_target_plus_extra_spot_replicas():
    policy = make_policy("spothedge")
    plan, _ = policy.plan(inp(target=3), policy.initial_state())
    assert plan.spot_target == 4
    assert sum(1 for launch in plan.launches if launch.spot) == 4


def test_service_without_spot_gets_only_on_demand():
    policy = make_policy("spothedge")
    plan, _ = policy.plan(inp(target=2, config=PlacementConfig()), policy.initial_state())
    assert [launch.spot for launch in plan.launches] == [False, False]


def test_on_demand_is_scaled_down_as_spot_becomes_ready():
    running = (
        replica(1, A),
        replica(2, B),
        replica(3, C),
        replica(4, A, spot=False),
        replica(5, A, spot=False),
    )
    policy = make_policy("spothedge")
    plan, _ = policy.plan(inp(target=2, replicas=running), policy.initial_state())
    assert sorted(plan.terminations) == [4, 5]
