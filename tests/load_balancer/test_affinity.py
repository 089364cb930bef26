"""Consistent hashing with bounded loads (load_balancer/affinity.py), pure: no processes."""

from __future__ import annotations

from collections import Counter

from load_balancer.affinity import HashRing, load_bound, pick
from load_balancer.balancing import Replica, SessionAffinity

URLS = [f"http://10.0.0.{i}:8000" for i in range(1, 5)]
KEYS = [f"session-{i}".encode() for i in range(8000)]
IDLE = [0] * len(URLS)


def owners(urls: list[str], loads: list[int] | None = None) -> dict[bytes, str]:
    ring = HashRing(urls)
    chosen = {key: pick(ring, key, loads or [0] * len(urls)) for key in KEYS}
    return {key: urls[index] for key, index in chosen.items() if index is not None}


def test_the_same_key_goes_to_the_same_replica() -> None:
    ring = HashRing(URLS)
    first = [pick(ring, key, IDLE) for key in KEYS[:200]]
    again = [pick(HashRing(URLS), key, IDLE) for key in KEYS[:200]]
    assert first == again == [pick(ring, key, IDLE) for key in KEYS[:200]]


def test_keys_spread_evenly_over_replicas() -> None:
    shares = Counter(owners(URLS).values())
    mean = len(KEYS) / len(URLS)
    assert set(shares) == set(URLS)
    assert all(abs(count - mean) < 0.15 * mean for count in shares.values()), shares


def test_a_replica_leaving_moves_only_its_keys() -> None:
    before = owners(URLS)
    after = owners([u for u in URLS if u != URLS[2]])
    moved = {key for key in KEYS if before[key] != after[key]}
    assert moved == {key for key in KEYS if before[key] == URLS[2]}


def test_a_replica_joining_takes_keys_only_for_itself() -> None:
    before = owners(URLS[:3])
    after = owners(URLS)
    moved = {key for key in KEYS if before[key] != after[key]}
    assert all(after[key] == URLS[3] for key in moved)
    assert 0.15 * len(KEYS) < len(moved) < 0.35 * len(KEYS)


def test_an_overloaded_replicas_key_goes_to_the_next_replica_on_its_walk() -> None:
    ring = HashRing(URLS)
    key = KEYS[0]
    home, runner_up = list(ring.walk(key))[:2]
    loads = [0] * len(URLS)
    loads[home] = 3  # bound = ceil(1.25 * 4 / 4) = 2: the home replica is at it
    assert pick(ring, key, loads) == runner_up


def test_a_replica_below_the_bound_keeps_its_key_while_busier_than_others() -> None:
    ring = HashRing(URLS)
    key = KEYS[0]
    home = next(ring.walk(key))
    loads = [2, 2, 2, 2]
    loads[home] = 3  # bound = ceil(1.25 * 10 / 4) = 4
    assert pick(ring, key, loads) == home


def test_the_bound_always_leaves_a_replica_below_it() -> None:
    for loads in ([5, 0, 0, 0], [3, 3, 3, 3], [9, 1, 0, 7], [0, 0, 0, 0]):
        bound = load_bound(sum(loads), len(loads), 1.25)
        assert min(loads) < bound
        assert pick(HashRing(URLS), KEYS[1], loads) is not None


def test_skipped_replicas_are_passed_over_on_the_walk() -> None:
    ring = HashRing(URLS)
    walk = list(ring.walk(KEYS[2]))
    assert walk == list(dict.fromkeys(walk)) and sorted(walk) == [0, 1, 2, 3]
    assert pick(ring, KEYS[2], IDLE, skip={walk[0], walk[1]}) == walk[2]


def _replicas() -> list[Replica]:
    return [Replica(url, slot, 1.0) for slot, url in enumerate(URLS)]


def test_policy_without_a_key_goes_by_least_load() -> None:
    replicas = _replicas()
    for r in replicas:
        r.in_flight = 5
    replicas[3].in_flight = 1
    assert SessionAffinity().choose(replicas, [], None) is replicas[3]


def test_policy_falls_back_to_least_load_when_every_other_replica_is_excluded_and_busy() -> None:
    replicas = _replicas()
    policy = SessionAffinity()
    home = policy.choose(replicas, [], KEYS[0])
    assert home is not None
    others = [r for r in replicas if r is not home]
    for r in others[:2]:
        r.in_flight = 50
    # With the home replica and the idle one excluded, both left are far above the bound.
    chosen = policy.choose(replicas, [home, others[2]], KEYS[0])
    assert chosen in others[:2]


def test_policy_sends_a_key_to_the_same_url_after_a_sync_replaces_the_list() -> None:
    policy = SessionAffinity()
    first = _replicas()
    chosen = policy.choose(first, [], KEYS[5])
    second = _replicas()
    again = policy.choose(second, [], KEYS[5])
    assert chosen is not None and again is not None and chosen.url == again.url
