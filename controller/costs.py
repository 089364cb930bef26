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

    @property
    def spot(self) -> bool: ...


def hourly_rates(replicas: Iterable[Priced], target: int) -> tuple[float, float]:
    """(what the instances we pay for cost now, what `target` on-demand replicas would)."""
    rows = list(replicas)
    paying = sum(r.price_per_hour for r in rows if r.instance_id and r.terminated_at is None)
    on_demand = max((r.on_demand_price_per_hour for r in rows), default=0.0) * target
    return paying, on_demand


def hourly_rates_by_market(replicas: Iterable[Priced]) -> dict[str, float]:
    """What the instances we pay for cost now, by market (`spot`, `on_demand`): the
    numerator of each market's $ per million tokens."""
    rates: dict[str, float] = {}
    for r in replicas:
        if r.instance_id and r.terminated_at is None:
            market = "spot" if r.spot else "on_demand"
            rates[market] = rates.get(market, 0.0) + r.price_per_hour
    return rates
