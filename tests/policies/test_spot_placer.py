"""`spot_placer: dynamic_fallback` against no placer, as SkyPilot places spot replicas in each
case: spread over active locations and leave the ones that preempt, or all in the cheapest
location that takes them. The on-demand fallback is the same either way."""

from __future__ import annotations

from dataclasses import replace

from policies.registry import make_policy
from policies.spothedge import SpotHedgeState
from policies.types import LocationEventKind, Plan, PolicyInput
from tests.policies.builders import SPOTHEDGE, A, B, C, event, inp, offer, replica

PLACER = SPOTHEDGE
NO_PLACER = replace(SPOTHEDGE, dynamic_placement=False)
# B is the cheapest spot location, then C, then A.
OFFERS = (offer(A, spot=1.2), offer(B, spot=0.8), offer(C, spot=1.0))


def plan(request: PolicyInput, state: SpotHedgeState | None = None) -> tuple[Plan, SpotHedgeState]:
    policy = make_policy("spothedge")
    result, after = policy.plan(request, state or policy.initial_state())
    assert isinstance(after, SpotHedgeState)
    return result, after


def spot_zones(result: Plan) -> list[str]:
    return sorted(launch.location.zone for launch in result.launches if launch.spot)


def test_with_the_placer_spot_replicas_spread_over_locations_cheapest_first() -> None:
    result, _ = plan(inp(target=2, offers=OFFERS, config=PLACER))
    assert spot_zones(result) == ["us-east-1a", "us-east-1b", "us-west-2a"]


def test_without_a_placer_every_spot_replica_goes_to_the_cheapest_location() -> None:
    result, _ = plan(inp(target=2, offers=OFFERS, config=NO_PLACER))
    assert spot_zones(result) == ["us-east-1b"] * 3


def test_with_the_placer_a_preempted_location_is_left_for_the_replacement() -> None:
    survivors = (replica(2, C), replica(3, A))
    preempted = (event(LocationEventKind.PREEMPTED, B),)
    request = inp(target=2, offers=OFFERS, replicas=survivors, config=PLACER, events=preempted)
    result, state = plan(request)
    assert state.preemptive == frozenset({B.key})
    assert spot_zones(result) == ["us-west-2a"]


def test_without_a_placer_the_replacement_goes_back_to_the_cheapest_location() -> None:
    survivors = (replica(2, B), replica(3, B))
    preempted = (event(LocationEventKind.PREEMPTED, B),)
    request = inp(target=2, offers=OFFERS, replicas=survivors, config=NO_PLACER, events=preempted)
    result, state = plan(request)
    assert state.preemptive == frozenset()
    assert spot_zones(result) == ["us-east-1b"]


def test_without_a_placer_a_refusing_location_is_skipped_until_its_backoff_ends() -> None:
    refused = (event(LocationEventKind.LAUNCH_REFUSED, B, at=990.0),)
    request = inp(target=1, offers=OFFERS, config=NO_PLACER, events=refused)
    result, state = plan(request)
    assert spot_zones(result) == ["us-west-2a"] * 2
    later, _ = plan(inp(target=1, offers=OFFERS, config=NO_PLACER, now=2000.0), state)
    assert spot_zones(later) == ["us-east-1b"] * 2


def test_the_on_demand_fallback_does_not_depend_on_the_placer() -> None:
    for config in (PLACER, NO_PLACER):
        result, _ = plan(inp(target=2, offers=OFFERS, config=config))
        assert (result.spot_target, result.on_demand_target) == (3, 2)
