"""The vocabulary shared by placement policies, the simulator and the live controller.

Pure data: frozen dataclasses, no I/O. Everything a policy may look at arrives in a
`PolicyInput`; everything it decides leaves in a `Plan`. Time is a number of seconds passed
in by the caller (wall clock in the controller, simulated clock in the simulator), so the
same policy object runs unchanged under both drivers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, order=True)
class Location:
    """A failure domain: one zone of one region of one cloud."""

    cloud: str
    region: str
    zone: str

    @property
    def key(self) -> str:
        return f"{self.cloud}/{self.region}/{self.zone}"

    @classmethod
    def parse(cls, key: str) -> Location:
        parts = key.split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"location key {key!r} is not 'cloud/region/zone'")
        return cls(*parts)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Offer:
    """A location a replica may be placed in, with hourly prices.

    `spot_price` is None where the location sells no spot capacity for these resources.
    """

    location: Location
    on_demand_price: float
    spot_price: float | None = None
    instance_type: str = ""


@dataclass(frozen=True)
class ReplicaView:
    """What a policy knows of one live replica (launching, starting or ready)."""

    replica_id: int
    location: Location
    spot: bool
    ready: bool
    version: int
    launched_at: float


class LocationEventKind(enum.StrEnum):
    PREEMPTED = "preempted"
    LAUNCH_REFUSED = "launch_refused"
    READY = "ready"


@dataclass(frozen=True)
class LocationEvent:
    """Something that happened in a location since the policy last planned."""

    kind: LocationEventKind
    location: Location
    at: float
    spot: bool = True


@dataclass(frozen=True)
class PlacementConfig:
    """The service YAML's placement knobs, as a policy needs them.

    `dynamic_placement` is SkyPilot's `spot_placer: dynamic_fallback`: spot replicas spread
    over active locations and leave the ones that preempt or refuse. False is a YAML without
    a placer, where SkyPilot sends every spot launch to the cheapest location that takes it.
    The default is True because SpotHedge, as the paper and the simulator run it, places so.
    """

    use_spot: bool = False
    num_overprovision: int = 0
    base_ondemand_fallback_replicas: int = 0
    dynamic_ondemand_fallback: bool = False
    dynamic_placement: bool = True
    availability_target: float | None = None
    """Our extension (a fraction, 0.995): `adaptive_hedge` buys on-demand while the service's
    recent outage is above what it allows (policies/outage_budget.py). None: no target."""


@dataclass(frozen=True)
class PolicyInput:
    """A frozen snapshot of the world for one planning step.

    `offers` come in the operator's preference order (cheapest first unless the YAML said
    `ordered`); `replicas` are the live ones only (failed and terminated replicas are gone).
    """

    target: int
    offers: tuple[Offer, ...]
    replicas: tuple[ReplicaView, ...]
    config: PlacementConfig
    now: float
    latest_version: int = 1
    events: tuple[LocationEvent, ...] = ()
    serving_on_notice: int = 0
    """Ready replicas left out of `replicas` because their preemption notice runs (they are
    being replaced) that still serve until it ends: the simulator's notice model. Live it is
    0: a DRAINING replica takes no new requests."""


@dataclass(frozen=True)
class Launch:
    location: Location
    spot: bool


@dataclass(frozen=True)
class Plan:
    """What to change: replicas to start and replica ids to stop.

    `spot_target` and `on_demand_target` are the counts the policy aims for, reported to the
    operator; the launches and terminations are the difference from now.
    """

    launches: tuple[Launch, ...] = ()
    terminations: tuple[int, ...] = ()
    spot_target: int = 0
    on_demand_target: int = 0
    notes: tuple[str, ...] = field(default=())
    on_demand_reason: str = ""
    """Why on-demand is planned when the reason is not spot being short (the operator's event)."""


class Policy(Protocol):
    """A placement policy: pure, deterministic given its input and state.

    `plan` must not mutate `state`; it returns the next state. States round-trip through
    `state_to_dict` / `state_from_dict` (plain JSON types) so the controller can persist them.
    """

    name: str

    def initial_state(self) -> Any: ...

    def plan(self, inp: PolicyInput, state: Any) -> tuple[Plan, Any]: ...

    def state_to_dict(self, state: Any) -> dict[str, Any]: ...

    def state_from_dict(self, data: dict[str, Any]) -> Any: ...
