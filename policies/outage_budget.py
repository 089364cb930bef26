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

Pure: times are passed in; the state is five plain values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_HALF_LIFE = 6 * 3600.0


@dataclass(frozen=True)
class OutageBudget:
    """The weighted outage as of `seen_at`; whether the service was short at that moment (the
    time until the next observation counts as outage if it was); the replica target it last
    met; whether on-demand protection is on."""

    outage: float = 0.0
    seen_at: float | None = None
    short: bool = False
    met: int = 0
    protecting: bool = False

    def observe(
        self, now: float, serving: int, wanted: int, goal: float | None, half_life: float
    ) -> OutageBudget:
        """The budget at `now`, with `serving` replicas of the `wanted` from now on, for an
        availability `goal` (a fraction, None for none).

        Short means fewer serving than the target last met, or than `wanted` if that is
        lower: a service's first cold start and a scale-up's new replicas are not an outage
        (they were never serving), a loss below what already served is."""
        met = wanted if serving >= wanted else self.met
        outage, seen = self.outage, now
        if self.seen_at is not None and now <= self.seen_at:
            seen = self.seen_at
        elif self.seen_at is not None:
            outage *= math.pow(2.0, -(now - self.seen_at) / half_life)
            if self.short:
                outage += now - self.seen_at
        protecting = False
        if goal is not None:
            allowed = allowed_outage(goal, half_life)
            protecting = outage > allowed or (self.protecting and outage > allowed / 2)
        return OutageBudget(outage, seen, serving < min(wanted, met), met, protecting)

    def to_json(self) -> dict[str, object]:
        return {
            "outage": self.outage,
            "seen_at": self.seen_at,
            "short": self.short,
            "met": self.met,
            "protecting": self.protecting,
        }

    @staticmethod
    def from_json(data: object) -> OutageBudget:
        if not isinstance(data, dict):
            return OutageBudget()
        seen = data.get("seen_at")
        return OutageBudget(
            float(data.get("outage", 0.0)),
            None if seen is None else float(seen),
            bool(data.get("short", False)),
            int(data.get("met", 0)),
            bool(data.get("protecting", False)),
        )


def allowed_outage(target: float, half_life: float) -> float:
    """Weighted outage seconds a service exactly at `target` availability carries."""
    return (1.0 - target) * half_life / math.log(2.0)
