"""Consistent hashing with bounded loads: which replica a session key goes to.

The rule is Mirrokni, Thorup and Zadimoghaddam's ("Consistent Hashing with Bounded Loads",
arXiv:1608.01350, SODA 2018), as HAProxy's ``hash-balance-factor`` implements it (Vimeo
contributed it to HAProxy 1.7 to keep video segments on cache-warm servers):

- every replica owns ``VNODES`` points on a ring of 64-bit hashes of its URL;
- a key hashes to a point; walking clockwise from there, the key goes to the first replica
  whose requests in flight are below the bound

      bound = ceil(c * (total in flight + 1) / replicas),   c = the balance factor (1.25)

  so no replica carries more than c times the mean while another one is under it, and a
  replica at the bound passes its keys to the next replica on the ring, the same one for
  every key of that replica (a session spills over together, to a stable place).

Invariants (pure: no I/O, no clock, no randomness):
- the same key and the same ready set give the same walk in every worker and every load
  balancer process (the hash is BLAKE2b, not Python's per-process salted ``hash``);
- when a replica joins or leaves, only the keys whose walk reaches it first move;
- the bound always leaves a replica below it (the loads sum to the total, and the bound
  exceeds the mean), so ``pick`` without skipped replicas never returns None.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Collection, Iterator, Sequence

VNODES = 160
"""Points per replica; 160 (as libketama uses) keeps every replica's share of keys within
about 10% of the mean."""
DEFAULT_BALANCE_FACTOR = 1.25


def key_point(key: bytes) -> int:
    """A key's place on the ring: the first 8 bytes of its BLAKE2b digest."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


class HashRing:
    """The points of a fixed list of nodes (replica URLs); immutable once built."""

    __slots__ = ("_owners", "_points", "nodes")

    def __init__(self, nodes: Sequence[str], vnodes: int = VNODES) -> None:
        self.nodes = tuple(nodes)
        placed = sorted(
            (key_point(f"{node}#{v}".encode()), index)
            for index, node in enumerate(self.nodes)
            for v in range(vnodes)
        )
        self._points = [point for point, _ in placed]
        self._owners = [owner for _, owner in placed]

    def walk(self, key: bytes) -> Iterator[int]:
        """Indices into ``nodes``, each once, in ring order from the key's point."""
        count = len(self._points)
        if not count:
            return
        start = bisect.bisect_left(self._points, key_point(key))
        seen: set[int] = set()
        for step in range(count):
            owner = self._owners[(start + step) % count]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == len(self.nodes):
                    return


def load_bound(total_in_flight: int, replicas: int, factor: float) -> int:
    """The most requests a replica may hold and still take a new keyed one (exclusive)."""
    return math.ceil(round(factor * (total_in_flight + 1) / replicas, 9))


def pick(
    ring: HashRing,
    key: bytes,
    loads: Sequence[int],
    factor: float = DEFAULT_BALANCE_FACTOR,
    skip: Collection[int] = (),
) -> int | None:
    """The index of the key's replica: the first on its walk not in ``skip`` and below the
    bound (``loads`` are in flight per node, in ``ring.nodes`` order; the bound counts every
    node, skipped or not). None when every node not skipped is at the bound."""
    if not loads:
        return None
    bound = load_bound(sum(loads), len(loads), factor)
    for index in ring.walk(key):
        if index not in skip and loads[index] < bound:
            return index
    return None
