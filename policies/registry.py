"""Policies by name, for the controller and the simulator.

`make_policy(name, **options)` is the only way the rest of the project builds a policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policies.adaptive_hedge import AdaptiveHedgePolicy
from policies.on_demand import OnDemandPolicy
from policies.optimal import OptimalPolicy
from policies.spot_only import EvenSpreadPolicy, RoundRobinPolicy
from policies.spothedge import SpotHedgePolicy
from policies.static_mix import StaticMixPolicy
from policies.types import Policy

_FACTORIES: dict[str, Callable[..., Policy]] = {
    "spothedge": SpotHedgePolicy,
    "adaptive_hedge": AdaptiveHedgePolicy,
    "on_demand": OnDemandPolicy,
    "even_spread": EvenSpreadPolicy,
    "round_robin": RoundRobinPolicy,
    "static_mix": StaticMixPolicy,
    "optimal": OptimalPolicy,
}

POLICY_NAMES: tuple[str, ...] = tuple(_FACTORIES)


class UnknownPolicy(ValueError):
    """No policy of that name."""


def make_policy(name: str, **options: Any) -> Policy:
    """Build the policy called `name`; options are the policy's constructor arguments.

    Raises UnknownPolicy for an unknown name, and TypeError naming the option for an option
    the policy does not take. `optimal` needs `schedule=` (it must know the trace).
    """
    factory = _FACTORIES.get(name.strip().lower().replace("-", "_"))
    if factory is None:
        raise UnknownPolicy(f"unknown policy {name!r}; choose one of: {', '.join(POLICY_NAMES)}")
    try:
        return factory(**options)
    except TypeError as exc:
        raise TypeError(f"policy {name!r}: {exc}") from exc
