"""A rolling update never runs more than the plan's steady state plus the surge."""

from __future__ import annotations

from policies.replica_sets import bound_surge
from policies.types import Launch, Location, PlacementConfig, Plan, PolicyInput, ReplicaView

A = Location("local", "local", "local-a")


def _replica(replica_id: int, version: int, ready: bool = True) -> ReplicaView:
    return ReplicaView(replica_id, A, spot=False, ready=ready, version=version, launched_at=0.0)


def _input(replicas: list[ReplicaView], latest: int = 2) -> PolicyInput:
    return PolicyInput(
        target=4,
        offers=(),
        replicas=tuple(replicas),
        config=PlacementConfig(),
        now=0.0,
        latest_version=latest,
    )


def _plan(launches: int, terminations: tuple[int, ...] = ()) -> Plan:
    return Plan(
        launches=tuple(Launch(A, spot=False) for _ in range(launches)),
        terminations=terminations,
        on_demand_target=4,
    )


def test_an_update_launches_no_more_than_the_surge_above_the_steady_state() -> None:
    old = [_replica(i, version=1) for i in range(1, 5)]
    assert len(bound_surge(_plan(4), _input(old), surge=1).launches) == 1
    assert len(bound_surge(_plan(4), _input(old), surge=2).launches) == 2


def test_room_comes_back_as_old_replicas_go() -> None:
    replicas = [*(_replica(i, 1) for i in (1, 2, 3)), _replica(5, 2)]
    plan = bound_surge(_plan(3, terminations=(1,)), _input(replicas), surge=1)
    assert len(plan.launches) == 2  # 3 stay, steady 4 + surge 1


def test_no_bound_outside_an_update() -> None:
    fresh = [_replica(1, version=2)]
    assert len(bound_surge(_plan(3), _input(fresh), surge=0).launches) == 3
