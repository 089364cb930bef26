"""Per-zone preemption and refusal risk that fades with time, for `adaptive_hedge`.

SpotHedge keeps a binary active/preemptive set: one preemption a day ago and ten in the last
hour look the same. Here each zone carries two scores that every event raises by one and
that halve every `half_life` seconds:

    score(now) = sum over events e of 2 ** (-(now - e.at) / half_life)

`preempted` counts preemptions (a replica lost), `refused` counts capacity-refused spot
launches (no replica lost, but the zone is short). Pure: `now` and event times are passed
in; the stored form is (key, preempted, refused, as_of) rows, plain JSON once listed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from policies.types import LocationEvent, LocationEventKind


@dataclass(frozen=True)
class ZoneScore:
    """One zone's scores as of `as_of` (they are decayed lazily, on read or update)."""

    preempted: float = 0.0
    refused: float = 0.0
    as_of: float = 0.0

    def at(self, now: float, half_life: float) -> ZoneScore:
        if now <= self.as_of:
            return self
        factor = math.pow(2.0, -(now - self.as_of) / half_life)
        return ZoneScore(self.preempted * factor, self.refused * factor, now)


RiskTable = tuple[tuple[str, ZoneScore], ...]
"""Zone key -> score, sorted by key so equal tables compare equal."""

FORGET_BELOW = 1e-3
"""A score this small is dropped, so a persisted table only lists zones with recent trouble."""


def observe(
    table: RiskTable, events: Iterable[LocationEvent], now: float, half_life: float
) -> RiskTable:
    """The table decayed to `now` with the spot PREEMPTED and LAUNCH_REFUSED events added
    (each counted at full weight: an event is at most a tick old when the policy hears it)."""
    scores = {key: score.at(now, half_life) for key, score in table}
    for event in events:
        if not event.spot or event.kind is LocationEventKind.READY:
            continue
        key = event.location.key
        old = scores.get(key, ZoneScore(as_of=now))
        if event.kind is LocationEventKind.PREEMPTED:
            scores[key] = ZoneScore(old.preempted + 1.0, old.refused, old.as_of)
        else:
            scores[key] = ZoneScore(old.preempted, old.refused + 1.0, old.as_of)
    kept = {key: s for key, s in scores.items() if max(s.preempted, s.refused) >= FORGET_BELOW}
    return tuple(sorted(kept.items()))


def preemption_risk(table: RiskTable) -> float:
    """Recent preemptions over all zones: how volatile the spot market is right now."""
    return sum(score.preempted for _, score in table)


def zone_risk(table: RiskTable, refusal_weight: float) -> dict[str, float]:
    """Per zone, how much trouble it gave lately; a refusal weighs `refusal_weight` of a
    preemption (the zone is short of capacity but took no replica away)."""
    return {key: s.preempted + refusal_weight * s.refused for key, s in table}


def table_to_json(table: RiskTable) -> dict[str, list[float]]:
    return {key: [s.preempted, s.refused, s.as_of] for key, s in table}


def table_from_json(data: Mapping[str, list[float]] | None) -> RiskTable:
    rows = []
    for key, values in (data or {}).items():
        preempted, refused, as_of = (float(v) for v in values)
        rows.append((str(key), ZoneScore(preempted, refused, as_of)))
    return tuple(sorted(rows))
