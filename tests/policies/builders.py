"""Small constructors for policy inputs, so each test states only what it is about."""

from __future__ import annotations

from policies.types import (
    Location,
    LocationEvent,
    LocationEventKind,
    Offer,
    PlacementConfig,
    PolicyInput,
    ReplicaView,
)

A = Location("aws", "us-east-1", "us-east-1a")
B = Location("aws", "us-east-1", "us-east-1b")
C = Location("aws", "us-west-2", "us-west-2a")
D = Location("gcp", "us-central1", "us-central1-a")


def offer(location: Location, spot: float | None = 1.0, on_demand: float = 3.0) -> Offer:
    return Offer(location, on_demand, spot)


def replica(
    rid: int,
    location: Location = A,
    spot: bool = True,
    ready: bool = True,
    version: int = 1,
    launched_at: float | None = None,
) -> ReplicaView:
    return ReplicaView(
        rid, location, spot, ready, version, float(rid if launched_at is None else launched_at)
    )


def event(
    kind: LocationEventKind, location: Location, at: float = 0.0, spot: bool = True
) -> LocationEvent:
    return LocationEvent(kind, location, at, spot)


SPOTHEDGE = PlacementConfig(use_spot=True, num_overprovision=1, dynamic_ondemand_fallback=True)


def inp(
    target: int = 2,
    offers: tuple[Offer, ...] = (offer(A), offer(B), offer(C)),
    replicas: tuple[ReplicaView, ...] = (),
    config: PlacementConfig = SPOTHEDGE,
    now: float = 1000.0,
    events: tuple[LocationEvent, ...] = (),
    latest_version: int = 1,
) -> PolicyInput:
    return PolicyInput(target, offers, replicas, config, now, latest_version, events)
