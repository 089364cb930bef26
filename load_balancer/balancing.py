"""The ready replicas of one worker and the policies that pick among them.

Invariant: a replica removed from the ready list gets no new request, while requests already
holding it run to completion (they keep their ``Replica`` object; its pool stops reusing
connections). A replica's ``weight`` is the request rate it is meant to carry (its
accelerator's ``target_qps_per_replica``); only ``instance_aware_least_load`` reads it. Only
``session_affinity`` reads a request's session key (the value of the session header).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from load_balancer.affinity import DEFAULT_BALANCE_FACTOR, HashRing, pick
from load_balancer.http_head import Headers
from load_balancer.telemetry import WorkerCounters
from load_balancer.upstream import ConnectionPool

EJECT_SECONDS = 2.0


class Replica:
    """A ready replica as seen by one worker: address, connection pool, requests in flight."""

    __slots__ = ("authority", "ejected_until", "in_flight", "pool", "slot", "url", "weight")

    def __init__(self, url: str, slot: int, connect_timeout: float) -> None:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 80
        self.url = url
        self.slot = slot
        self.authority = parts.netloc.encode()
        self.pool = ConnectionPool(host, port, connect_timeout)
        self.in_flight = 0
        self.ejected_until = 0.0
        self.weight = 1.0


class RoundRobin:
    """Each request goes to the next replica in list order."""

    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def choose(
        self, replicas: Sequence[Replica], exclude: Sequence[Replica], key: bytes | None = None
    ) -> Replica | None:
        count = len(replicas)
        for offset in range(count):
            index = (self._next + offset) % count
            if replicas[index] not in exclude:
                self._next = index + 1
                return replicas[index]
        return None


class LeastLoad:
    """The replica with the fewest requests in flight; ties rotate so load spreads evenly."""

    name = "least_load"

    def __init__(self) -> None:
        self._start = 0

    def choose(
        self, replicas: Sequence[Replica], exclude: Sequence[Replica], key: bytes | None = None
    ) -> Replica | None:
        count = len(replicas)
        best: Replica | None = None
        self._start = (self._start + 1) % count if count else 0
        for offset in range(count):
            candidate = replicas[(self._start + offset) % count]
            if exclude and candidate in exclude:
                continue
            if best is None or self.load(candidate) < self.load(best):
                best = candidate
        return best

    @staticmethod
    def load(replica: Replica) -> float:
        return replica.in_flight


class InstanceAwareLeastLoad(LeastLoad):
    """The replica with the fewest requests in flight per unit of capacity: in flight divided
    by its weight, so an A100 meant for 10 req/s takes 2.5 times the requests of an L4 meant
    for 4 before they look equally busy. Mirrors SkyPilot's ``InstanceAwareLeastLoadPolicy``
    (sky/serve/load_balancing_policies.py: current load divided by the replica's accelerator's
    target QPS). Ties rotate as in ``LeastLoad``."""

    name = "instance_aware_least_load"

    @staticmethod
    def load(replica: Replica) -> float:
        return replica.in_flight / replica.weight


class SessionAffinity(LeastLoad):
    """Requests with the same session key go to the same replica while it is below the load
    bound, so an LLM server reuses the prefix (KV) cache of the conversation; requests
    without a key go by least load. The choice is ``affinity.pick`` (consistent hashing with
    bounded loads); the ring is rebuilt only when the ready URLs change. Our extension of
    SkyPilot's policies."""

    name = "session_affinity"

    def __init__(self, balance_factor: float = DEFAULT_BALANCE_FACTOR) -> None:
        super().__init__()
        self.balance_factor = balance_factor
        self._ring = HashRing(())
        self._ring_of: Sequence[Replica] = ()

    def choose(
        self, replicas: Sequence[Replica], exclude: Sequence[Replica], key: bytes | None = None
    ) -> Replica | None:
        if key is None or not replicas:
            return super().choose(replicas, exclude)
        ring = self._ring_for(replicas)
        skip = {i for i, r in enumerate(replicas) if r in exclude} if exclude else ()
        loads = [r.in_flight for r in replicas]
        index = pick(ring, key, loads, self.balance_factor, skip)
        return super().choose(replicas, exclude) if index is None else replicas[index]

    def _ring_for(self, replicas: Sequence[Replica]) -> HashRing:
        """Ready lists are replaced, never mutated: a new list with the same URLs (every
        sync) keeps the ring."""
        if replicas is not self._ring_of:
            urls = tuple(r.url for r in replicas)
            if urls != self._ring.nodes:
                self._ring = HashRing(urls)
            self._ring_of = replicas
        return self._ring


Policy = RoundRobin | LeastLoad
POLICIES: dict[str, type[Policy]] = {
    p.name: p for p in (LeastLoad, RoundRobin, InstanceAwareLeastLoad, SessionAffinity)
}


def make_policy(name: str, balance_factor: float = DEFAULT_BALANCE_FACTOR) -> Policy:
    if name == SessionAffinity.name:
        return SessionAffinity(balance_factor)
    try:
        return POLICIES[name]()
    except KeyError:
        known = ", ".join(POLICIES)
        raise ValueError(f"unknown load_balancing_policy {name!r}; use one of: {known}") from None


@dataclass(frozen=True)
class AffinitySettings:
    """``session_affinity``'s inputs: the header carrying the session key (lowercase) and
    the balance factor c of the load bound (``affinity.load_bound``)."""

    header: bytes = b"x-session-id"
    balance_factor: float = DEFAULT_BALANCE_FACTOR


class ReplicaSet:
    """The ready list plus the active policy; updated by the sync, read by every request."""

    def __init__(
        self,
        policy: str,
        counters: WorkerCounters,
        connect_timeout: float,
        affinity: AffinitySettings | None = None,
    ) -> None:
        self.affinity = affinity or AffinitySettings()
        self._policy = make_policy(policy, self.affinity.balance_factor)
        self._counters = counters
        self._connect_timeout = connect_timeout
        self.ready: list[Replica] = []
        self._ejected: list[Replica] = []

    @property
    def policy_name(self) -> str:
        return self._policy.name

    def update(
        self,
        assignments: Sequence[tuple[str, int]],
        policy: str | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        """Replace the ready list with ``(url, telemetry slot)`` pairs, keeping known replicas.

        ``weights`` (url -> capacity) replaces every replica's weight; no weights means equal
        ones, and a replica the map leaves out gets the smallest weight given (an unknown
        accelerator is assumed to be the weakest, as the controller assumes too)."""
        if policy and policy != self._policy.name:
            self._policy = make_policy(policy, self.affinity.balance_factor)
        known = {r.url: r for r in self.ready}
        fresh = [
            known.pop(url) if url in known else Replica(url, slot, self._connect_timeout)
            for url, slot in assignments
        ]
        for gone in known.values():
            gone.pool.close()
        fallback = min(weights.values()) if weights else 1.0
        for replica in fresh:
            replica.weight = weights.get(replica.url, fallback) if weights else 1.0
        self.ready = fresh

    def choose(self, exclude: Sequence[Replica], key: bytes | None = None) -> Replica | None:
        """Pick by policy, skipping recently unreachable replicas unless nothing else is left."""
        if not self.ready:
            return None
        if self._ejected:
            now = time.monotonic()
            self._ejected = [r for r in self._ejected if r.ejected_until > now]
            if self._ejected:
                chosen = self._policy.choose(self.ready, [*exclude, *self._ejected], key)
                if chosen is not None:
                    return chosen
        return self._policy.choose(self.ready, exclude, key)

    def session_key(self, headers: Headers) -> bytes | None:
        """The request's session key when the policy reads one: the first non-empty value
        of the session header; None otherwise (and then the policy goes by least load)."""
        if not isinstance(self._policy, SessionAffinity):
            return None
        wanted = self.affinity.header
        for name, value in headers:
            if value and name.lower() == wanted:
                return value
        return None

    def set_session_header(self, header: str) -> None:
        self.affinity = replace(self.affinity, header=header.lower().encode("latin-1"))

    def eject(self, replica: Replica) -> None:
        """Passive health check: a replica that refused a connection, or closed a fresh one
        without answering, is avoided for EJECT_SECONDS unless no other replica is left."""
        replica.ejected_until = time.monotonic() + EJECT_SECONDS
        if replica not in self._ejected:
            self._ejected.append(replica)

    def hold(self, replica: Replica) -> None:
        replica.in_flight += 1
        self._counters.in_flight(replica.slot, 1)

    def unhold(self, replica: Replica) -> None:
        replica.in_flight -= 1
        self._counters.in_flight(replica.slot, -1)

    def slots(self) -> list[tuple[str, int]]:
        return [(r.url, r.slot) for r in self.ready]


class SlotAllocator:
    """Stable telemetry slot per replica URL; freed slots are reused last (FIFO).

    Run by whoever syncs (one per load balancer), so every worker labels a replica alike.
    """

    def __init__(self, capacity: int) -> None:
        self._free = list(range(capacity))
        self._by_url: dict[str, int] = {}

    def assign(self, urls: Sequence[str]) -> list[tuple[str, int]]:
        wanted = list(dict.fromkeys(urls))
        for url in [u for u in self._by_url if u not in wanted]:
            self._free.append(self._by_url.pop(url))
        for url in wanted:
            if url not in self._by_url and self._free:
                self._by_url[url] = self._free.pop(0)
        return [(url, self._by_url[url]) for url in wanted if url in self._by_url]
