"""Properties every policy keeps whatever the world looks like."""

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.registry import make_policy
from policies.types import LocationEventKind, PlacementConfig
from tests.policies.builders import A, B, C, D, event, inp, offer, replica

LOCATIONS = (A, B, C, D)

replicas = st.lists(
    st.builds(
        replica,
        rid=st.integers(1, 10_000),
        location=st.sampled_from(LOCATIONS),
        spot=st.booleans(),
        ready=st.booleans(),
        version=st.integers(1, 3),
        launched_at=st.floats(0, 1000),
    ),
    max_size=12,
    unique_by=lambda r: r.replica_id,
)
events = st.lists(
    st.builds(
        event,
        kind=st.sampled_from(list(LocationEventKind)),
        location=st.sampled_from(LOCATIONS),
        at=st.floats(0, 1000),
        spot=st.booleans(),
    ),
    max_size=8,
)
configs = st.builds(
    PlacementConfig,
    use_spot=st.booleans(),
    num_overprovision=st.integers(0, 3),
    base_ondemand_fallback_replicas=st.integers(0, 4),
    dynamic_ondemand_fallback=st.booleans(),
    availability_target=st.one_of(st.none(), st.sampled_from([0.9, 0.995, 0.99999])),
)
offer_sets = st.lists(st.sampled_from(LOCATIONS), min_size=1, max_size=4, unique=True).map(
    lambda locs: tuple(offer(loc) for loc in locs)
)
worlds = st.builds(
    inp,
    target=st.integers(0, 6),
    offers=offer_sets,
    replicas=st.tuples().flatmap(lambda _: replicas.map(tuple)),
    config=configs,
    now=st.floats(0, 2000),
    events=events.map(tuple),
    latest_version=st.integers(1, 3),
)
POLICIES = ("spothedge", "adaptive_hedge", "on_demand", "even_spread", "round_robin", "static_mix")


def on_demand_after(world, plan):
    kept = [
        r
        for r in world.replicas
        if not r.spot
        and r.version >= world.latest_version
        and r.replica_id not in plan.terminations
    ]
    return len(kept) + sum(1 for launch in plan.launches if not launch.spot)


@settings(max_examples=300, deadline=None)
@given(world=worlds, name=st.sampled_from(POLICIES))
def test_never_plans_more_on_demand_than_the_target(world, name):
    policy = make_policy(name)
    plan, _ = policy.plan(world, policy.initial_state())
    assert plan.on_demand_target <= max(0, world.target)
    assert on_demand_after(world, plan) <= max(0, world.target)


@settings(max_examples=300, deadline=None)
@given(world=worlds, name=st.sampled_from(POLICIES))
def test_never_plans_a_negative_count(world, name):
    policy = make_policy(name)
    plan, _ = policy.plan(world, policy.initial_state())
    assert plan.spot_target >= 0
    assert plan.on_demand_target >= 0
    assert len(set(plan.terminations)) == len(plan.terminations)
    assert set(plan.terminations) <= {r.replica_id for r in world.replicas}


@settings(max_examples=200, deadline=None)
@given(world=worlds, name=st.sampled_from(POLICIES))
def test_launches_only_in_offered_locations(world, name):
    policy = make_policy(name)
    plan, _ = policy.plan(world, policy.initial_state())
    spot_ok = {o.location for o in world.offers if o.spot_price is not None}
    offered = {o.location for o in world.offers}
    for launch in plan.launches:
        assert launch.location in (spot_ok if launch.spot else offered)


@settings(max_examples=200, deadline=None)
@given(world=worlds, name=st.sampled_from(POLICIES))
def test_state_survives_a_controller_restart(world, name):
    policy = make_policy(name)
    _, state = policy.plan(world, policy.initial_state())
    assert policy.state_from_dict(policy.state_to_dict(state)) == state


@settings(max_examples=200, deadline=None)
@given(world=worlds)
def test_spothedge_is_deterministic(world):
    policy = make_policy("spothedge")
    first = policy.plan(world, policy.initial_state())
    second = policy.plan(world, policy.initial_state())
    assert first == second
