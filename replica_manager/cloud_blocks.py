"""Clouds (or single locations) a service stops trying for a while.

A launch refused for a reason a person must fix (credentials, a request the cloud calls
invalid) is not retried elsewhere like a capacity refusal; the cloud is left alone for
`Settings.cloud_block_seconds`, and an event says why. Frozen: a tick computes the new
blocks and stores them with the service (JSON), so a restart keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from policies.types import Location


@dataclass(frozen=True)
class Block:
    until: float
    reason: str


@dataclass(frozen=True)
class CloudBlocks:
    """Blocked keys: a cloud (`aws`) or a location key (`aws/us-east-1/us-east-1a`)."""

    blocks: Mapping[str, Block] = field(default_factory=lambda: MappingProxyType({}))

    def current(self, now: float) -> CloudBlocks:
        """Without the blocks that have run out."""
        kept = {k: b for k, b in self.blocks.items() if b.until > now}
        return self if len(kept) == len(self.blocks) else CloudBlocks(MappingProxyType(kept))

    def block(self, where: str, until: float, reason: str) -> CloudBlocks:
        return CloudBlocks(MappingProxyType({**self.blocks, where: Block(until, reason)}))

    def allows(self, location: Location) -> bool:
        return location.key not in self.blocks and location.cloud not in self.blocks

    def to_json(self) -> dict[str, Any]:
        return {k: {"until": b.until, "reason": b.reason} for k, b in self.blocks.items()}

    @classmethod
    def from_json(cls, data: Any) -> CloudBlocks:
        if not isinstance(data, dict):
            return cls()
        blocks = {
            str(k): Block(float(v["until"]), str(v.get("reason", "")))
            for k, v in data.items()
            if isinstance(v, dict) and "until" in v
        }
        return cls(MappingProxyType(blocks))
