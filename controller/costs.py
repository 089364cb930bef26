"""What a service costs per hour, and what the same target would cost all on-demand.

One definition for the cost the reconcile tick accrues and the cost the API shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Priced(Protocol):
    @property
    def price_per_hour(self) -> float: ...

    @property
    def on_demand_price_per_hour(self) -> float: ...

    @property
    def instance_id(self) -> str | None: ...

    @property
    def terminated_at(self) -> float | None: ...


def hourly_rates(replicas: Iterable[Priced], target: int) -> tuple[float, float]:
    """(what the instances we pay for cost now, what `target` on-demand replicas would)."""
    rows = list(replicas)
    paying = sum(r.price_per_hour for r in rows if r.instance_id and r.terminated_at is None)
    on_demand = max((r.on_demand_price_per_hour for r in rows), default=0.0) * target
    return paying, on_demand
