"""Per-accelerator targets: the autoscaler counts capacity, not replicas."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.capacity import Fleet, replicas_for
from autoscaler.target import ScalerState, ScalingConfig, decide_target

A100, L4 = 10.0, 4.0
BY_CAPACITY = ScalingConfig(
    min_replicas=1,
    max_replicas=10,
    upscale_delay_seconds=300,
    downscale_delay_seconds=1200,
    per_accelerator=True,
)

capacities = st.sampled_from([0.5, 1.0, 2.5, 4.0, 10.0, 16.0])
fleets = st.builds(Fleet, st.lists(capacities, max_size=8).map(tuple), capacities)
rates = st.floats(min_value=0.0, max_value=200.0, allow_nan=False)


def test_an_empty_fleet_wants_replicas_of_the_next_accelerator() -> None:
    assert replicas_for(12.0, Fleet((), next_replica=L4)) == 3
    assert replicas_for(12.0, Fleet((), next_replica=A100)) == 2


def test_a_short_fleet_keeps_its_replicas_and_adds_what_covers_the_rest() -> None:
    # One A100 carries 10 of 18 req/s; two L4 cover the other 8.
    assert replicas_for(18.0, Fleet((A100,), next_replica=L4)) == 3
    assert replicas_for(18.1, Fleet((A100,), next_replica=L4)) == 4


def test_a_covered_rate_keeps_enough_replicas_whichever_are_stopped() -> None:
    # 12 req/s on A100 + L4 + L4: two replicas could carry it only if the A100 stays, and
    # the placement policy does not choose by accelerator, so all three are kept.
    assert replicas_for(12.0, Fleet((A100, L4, L4), next_replica=L4)) == 3
    # 8 req/s: any two of them carry it.
    assert replicas_for(8.0, Fleet((A100, L4, L4), next_replica=L4)) == 2


def test_no_traffic_wants_no_replica_before_clipping() -> None:
    assert replicas_for(0.0, Fleet((A100, L4), next_replica=L4)) == 0
    target, _ = decide_target(BY_CAPACITY, 0.0, ScalerState(target=1), 0.0, Fleet((L4,), L4))
    assert target == 1


def test_the_target_follows_capacity_after_the_upscale_delay() -> None:
    state = ScalerState(target=1)
    fleet = Fleet((A100,), next_replica=L4)
    targets = []
    for now in (0.0, 150.0, 300.0):
        target, state = decide_target(BY_CAPACITY, 18.0, state, now, fleet)
        targets.append(target)
    assert targets == [1, 1, 3]


def test_scaling_up_counts_the_accelerator_launched_next_not_the_largest() -> None:
    state = ScalerState(target=1)
    for now in (0.0, 300.0):
        target, state = decide_target(BY_CAPACITY, 30.0, state, now, Fleet((L4,), L4))
    assert target == 8  # SkyPilot's largest-entry rule would want 1 + ceil(26 / 10) = 4


def test_max_replicas_caps_a_rate_no_fleet_can_carry() -> None:
    assert BY_CAPACITY.wanted(1e9, Fleet((L4,), L4)) == 10
    assert BY_CAPACITY.wanted(math.inf, Fleet((L4,), L4)) == 10


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=8), capacities, rates)
def test_one_accelerator_gives_the_one_number_rule(count: int, qps: float, rate: float) -> None:
    expected = math.ceil(rate / qps - 1e-9) if rate > 1e-9 else 0
    assert replicas_for(rate, Fleet((qps,) * count, qps)) == expected


@settings(max_examples=300, deadline=None)
@given(fleets, rates)
def test_the_replicas_kept_or_added_always_carry_the_rate(fleet: Fleet, rate: float) -> None:
    wanted = replicas_for(rate, fleet)
    live = sorted(fleet.live)
    if wanted > len(live):
        added = wanted - len(live)
        assert sum(live) + added * fleet.next_replica >= rate - 1e-6
        assert sum(live) + (added - 1) * fleet.next_replica < rate
    else:
        assert sum(live[:wanted]) >= rate - 1e-6, "the weakest `wanted` replicas carry it"
        assert wanted == 0 or sum(live[: wanted - 1]) < rate, "and no fewer would"


@settings(max_examples=300, deadline=None)
@given(fleets, rates, rates)
def test_more_traffic_never_wants_fewer_replicas(fleet: Fleet, low: float, high: float) -> None:
    low, high = sorted((low, high))
    assert replicas_for(low, fleet) <= replicas_for(high, fleet)
