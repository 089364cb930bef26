"""Memory of capacity-refused launches, so a re-plan in the same tick moves on.

The controller re-plans right after a refused launch, in the same tick, with a
LAUNCH_REFUSED event. A location that refused a launch less than `backoff` seconds ago is
not proposed again, so that re-plan picks another location (or waits) instead of asking
the same location again forever. Pure: `now` and the events' times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from policies.types import LocationEvent, LocationEventKind

DEFAULT_BACKOFF_SECONDS = 30.0

RefusalLog = tuple[tuple[str, float], ...]
"""(location key, time of its latest refused launch), sorted by key: plain JSON data."""


def record_refusals(log: RefusalLog, events: Iterable[LocationEvent], spot: bool) -> RefusalLog:
    """The log with this market's LAUNCH_REFUSED events added and its READY events cleared."""
    latest = dict(log)
    for event in events:
        if event.spot != spot:
            continue
        key = event.location.key
        if event.kind is LocationEventKind.LAUNCH_REFUSED:
            latest[key] = max(event.at, latest.get(key, event.at))
        elif event.kind is LocationEventKind.READY:
            latest.pop(key, None)
    return tuple(sorted(latest.items()))


def recently_refused(log: RefusalLog, now: float, backoff: float) -> frozenset[str]:
    """Keys of locations that refused a launch less than `backoff` seconds before `now`."""
    return frozenset(key for key, at in log if now - at < backoff)


def prune(log: RefusalLog, now: float, backoff: float) -> RefusalLog:
    """Drop entries too old to matter, so persisted state stays small."""
    return tuple((key, at) for key, at in log if now - at < backoff)


def log_to_json(log: RefusalLog) -> dict[str, float]:
    return dict(log)


def log_from_json(data: Mapping[str, float] | None) -> RefusalLog:
    return tuple(sorted((str(k), float(v)) for k, v in (data or {}).items()))
