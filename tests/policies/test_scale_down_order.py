from policies.registry import make_policy
from policies.replica_sets import removal_order
from tests.policies.builders import A, B, C, inp, replica


def test_not_ready_replicas_go_before_ready_ones():
    order = removal_order([replica(1, ready=True), replica(2, ready=False)])
    assert [r.replica_id for r in order] == [2, 1]


def test_older_versions_go_before_newer_ones():
    order = removal_order([replica(1, version=2), replica(2, version=1)])
    assert [r.replica_id for r in order] == [2, 1]


def test_ready_on_demand_goes_before_ready_spot():
    order = removal_order([replica(1, spot=True), replica(2, spot=False)])
    assert [r.replica_id for r in order] == [2, 1]


def test_most_recently_launched_goes_first_among_equals():
    order = removal_order([replica(1, launched_at=10), replica(2, launched_at=20)])
    assert [r.replica_id for r in order] == [2, 1]


def test_scaling_down_spot_removes_a_launching_replica_before_a_ready_one():
    running = (
        replica(1, A),
        replica(2, B),
        replica(3, C),
        replica(4, A),
        replica(5, B, ready=False),
    )
    policy = make_policy("spothedge")
    plan, _ = policy.plan(inp(target=2, replicas=running), policy.initial_state())
    assert plan.terminations == (5, 4)


def test_old_version_replicas_stay_until_the_new_version_is_ready():
    old = (replica(1, A, version=1), replica(2, B, version=1))
    new = (replica(3, A, version=2, ready=False), replica(4, B, version=2, ready=False))
    policy = make_policy("on_demand")
    plan, _ = policy.plan(
        inp(target=2, replicas=old + new, latest_version=2), policy.initial_state()
    )
    assert not set(plan.terminations) & {1, 2}


def test_old_version_replicas_go_once_the_new_version_is_ready():
    old = (replica(1, A, spot=False, version=1), replica(2, B, spot=False, version=1))
    new = (replica(3, A, spot=False, version=2), replica(4, B, spot=False, version=2))
    policy = make_policy("on_demand")
    plan, _ = policy.plan(
        inp(target=2, replicas=old + new, latest_version=2), policy.initial_state()
    )
    assert sorted(plan.terminations) == [1, 2]
