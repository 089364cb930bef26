"""An availability target as an error budget, for `adaptive_hedge`'s `availability_target`.

No policy that only reacts to preemptions reaches 99.5% on a market like aws2's, where the
zone holding every ready replica is emptied about every 50 minutes while the others have no
spot (`benchmarks/policy/PRICE_OF_AVAILABILITY.md`): each loss costs a cold start. What an
operator can still ask for is "spend what it takes": watch the service's own outage and,
while it runs above what the target allows, serve from on-demand replicas only.

The outage is the time the service had fewer replicas serving than its target (the paper's
and the simulator's definition), weighted by age, halving every `half_life` seconds. Only a
loss counts: while a scale-up's new replicas start, the service is short only if fewer serve
than the target it last met (a first cold start, likewise, is no outage).

    outage(now) = sum over short stretches of their seconds, each weighted 2 ** (-age / h)

At a steady outage fraction f this tends to f * h / ln 2, so the budget is

    allowed = (1 - target) * h / ln 2

Protection starts when outage(now) > allowed: one lost zone (a cold start, two minutes) stays
inside a 99.5% budget of 6 hours' half-life (156 s), a second one soon after does not. It
ends once the outage has faded to half the budget, hours of on-demand later (a market that
was rough an hour ago tends to stay rough for hours). Why half: ending at the budget itself
lets the next loss, a lump of one cold start L, start the next round at once, and the rounds
then settle where allowed = L x / (1 - x), x = 2 ** (-T / h), an outage rate of L / T above
the target (for L = 120 s, 0.67% instead of 0.5%). Ending at half the budget makes each round
longer: at 99.5% and 6 hours the next loss lifts the outage from 78 s to 198 s, which takes
8 hours to fade back to 78 s, about 0.4% of the time in outage, within the target.

Pure: times are passed in; the state is five plain values, changed only on transitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_HALF_LIFE = 6 * 3600.0


@dataclass(frozen=True)
class OutageBudget:
    """The weighted outage as of `as_of`; since when the service has been short (None while
    it is not); the replica target it last met; whether on-demand protection is on.

    Changed only when one of those changes (the outage between is computed, not stored), so
    a policy state holding it is written to the database on transitions, not every tick."""

    outage: float = 0.0
    as_of: float | None = None
    short_since: float | None = None
    met: int = 0
    protecting: bool = False

    def at(self, now: float, half_life: float) -> float:
        """The weighted outage at `now`: the stored figure decayed, plus the current short
        stretch integrated, (h / ln 2) (1 - 2 ** (-seconds / h))."""
        if self.as_of is None:
            return 0.0
        value = self.outage * math.pow(2.0, -max(0.0, now - self.as_of) / half_life)
        if self.short_since is not None:
            seconds = max(0.0, now - self.short_since)
            value += half_life / math.log(2.0) * (1.0 - math.pow(2.0, -seconds / half_life))
        return value

    def observe(
        self, now: float, serving: int, wanted: int, goal: float | None, half_life: float
    ) -> OutageBudget:
        """The budget at `now`, with `serving` replicas of the `wanted` from now on, for an
        availability `goal` (a fraction; None: nothing is tracked).

        Short means fewer serving than the target last met, or than `wanted` if that is
        lower: a service's first cold start and a scale-up's new replicas are not an outage
        (they were never serving), a loss below what already served is."""
        if goal is None:
            return OutageBudget()
        met = wanted if serving >= wanted else self.met
        short = serving < min(wanted, met)
        outage = self.at(now, half_life)
        allowed = allowed_outage(goal, half_life)
        protecting = outage > allowed or (self.protecting and outage > allowed / 2)
        was_short = self.short_since is not None
        unchanged = (short, met, protecting) == (was_short, self.met, self.protecting)
        if self.as_of is not None and unchanged:
            return self
        return OutageBudget(outage, now, now if short else None, met, protecting)

    @property
    def short(self) -> bool:
        return self.short_since is not None

    def to_json(self) -> dict[str, object]:
        return {
            "outage": self.outage,
            "as_of": self.as_of,
            "short_since": self.short_since,
            "met": self.met,
            "protecting": self.protecting,
        }

    @staticmethod
    def from_json(data: object) -> OutageBudget:
        if not isinstance(data, dict):
            return OutageBudget()
        as_of, since = data.get("as_of"), data.get("short_since")
        return OutageBudget(
            float(data.get("outage", 0.0)),
            None if as_of is None else float(as_of),
            None if since is None else float(since),
            int(data.get("met", 0)),
            bool(data.get("protecting", False)),
        )


def allowed_outage(target: float, half_life: float) -> float:
    """Weighted outage seconds a service exactly at `target` availability carries."""
    return (1.0 - target) * half_life / math.log(2.0)
