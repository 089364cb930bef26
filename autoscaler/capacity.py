"""How many replicas carry a request rate when replicas differ in capacity. Pure: no I/O.

Used when `target_qps_per_replica` is given per accelerator (`{A100: 10, L4: 4}`): each
replica is meant to carry its accelerator's entry, so the autoscaler counts capacity, not
replicas. The caller passes the `Fleet`: the capacities of the live replicas of the latest
version (launching or ready) and the capacity of the replica placement would launch next
(its first-choice accelerator).

The rule, for a rate R (requests/s) and a fleet of n replicas with total capacity S:
- R > S (short): n + ceil((R - S) / next), i.e. keep every replica and add replicas of the
  next accelerator until the total covers R;
- R <= S (covered): the smallest k such that the k *smallest* capacities add up to R, so
  that whichever replicas the placement policy stops when it scales down to k (its removal
  order, policies/replica_sets.py, does not look at accelerators), the rest still carry R.
A fleet of one accelerator gives exactly `ceil(R / qps)`, the rule for one number.

It mirrors SkyPilot's `InstanceAwareRequestRateAutoscaler`
(sky/serve/autoscalers.py, `_set_target_num_replicas_with_instance_aware_logic`): when the
rate is above the fleet's total it adds `ceil(excess / qps)` replicas; below, it keeps
replicas until their summed targets exceed the rate. Three differences, each for a reason:
- SkyPilot counts added replicas at the *largest* entry; that under-counts whenever the
  cheaper, smaller accelerator is what gets launched, and each shortfall costs another
  `upscale_delay_seconds`. Here they count at the accelerator placement launches next.
- SkyPilot keeps the *largest* ready replicas first when scaling down and then removes the
  smallest ones (`_select_replicas_to_scale_down_by_qps`); our placement policy removes by
  readiness, version and market instead, so the count kept must hold for any removal.
- SkyPilot's scale-down sum counts ready replicas only, so a fleet still booting reads as
  a surplus; here launching replicas count, as they do in SkyPilot's scale-up total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Fleet:
    """`live`: capacity (requests/s) of each live replica of the latest version;
    `next_replica`: capacity of the replica placement would launch next (> 0)."""

    live: tuple[float, ...]
    next_replica: float


def replicas_for(rate: float, fleet: Fleet) -> int:
    """Replicas wanted for `rate` (not clipped to min/max: the caller clips)."""
    if rate <= TOLERANCE:
        return 0
    total = sum(fleet.live)
    if rate > total + TOLERANCE:
        return len(fleet.live) + math.ceil((rate - total) / fleet.next_replica - TOLERANCE)
    carried = 0.0
    for kept, capacity in enumerate(sorted(fleet.live), start=1):
        carried += capacity
        if carried >= rate - TOLERANCE:
            return kept
    return len(fleet.live)
