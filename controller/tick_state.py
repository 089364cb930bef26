"""What a service's reconcile tick remembers from one tick to the next, typed.

Stored with the service (`services.tick_state`, JSON) so a controller restart continues
where the last leader stopped: the autoscaler's waits, the streak of replicas that failed
before ever becoming ready, the on-demand/spot targets and the reason for on-demand last
reported (to tell the operator when they change), the clouds blocked for a while, when
orphans were last looked for, and why the load balancer cannot start (so its event is
written once, not every tick).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autoscaler.target import ScalerState
from replica_manager.cloud_blocks import CloudBlocks


@dataclass(frozen=True)
class TickState:
    scaler: ScalerState = field(default_factory=ScalerState)
    app_failure_streak: int = 0
    on_demand_target: int | None = None
    spot_target: int | None = None
    blocked: CloudBlocks = field(default_factory=CloudBlocks)
    last_orphan_scan: float = 0.0
    ready_version: int = 0
    """The newest version that has had a READY replica (its `ready_at` is recorded)."""
    lb_problem: str = ""
    """Why the service's load balancer cannot start ("" while it can): the endpoint is down."""
    on_demand_reason: str = ""
    """Why the policy last ran on on-demand beyond spot being short ("" for none)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "scaler": self.scaler.to_json(),
            "app_failure_streak": self.app_failure_streak,
            "on_demand_target": self.on_demand_target,
            "spot_target": self.spot_target,
            "blocked": self.blocked.to_json(),
            "last_orphan_scan": self.last_orphan_scan,
            "ready_version": self.ready_version,
            "lb_problem": self.lb_problem,
            "on_demand_reason": self.on_demand_reason,
        }

    @classmethod
    def from_json(cls, data: Any) -> TickState:
        """Tolerant: a missing or malformed part starts fresh rather than stopping a tick."""
        if not isinstance(data, dict):
            return cls()
        return cls(
            scaler=ScalerState.from_json(data.get("scaler")),
            app_failure_streak=int(data.get("app_failure_streak") or 0),
            on_demand_target=_opt_int(data.get("on_demand_target")),
            spot_target=_opt_int(data.get("spot_target")),
            blocked=CloudBlocks.from_json(data.get("blocked")),
            last_orphan_scan=float(data.get("last_orphan_scan") or 0.0),
            ready_version=int(data.get("ready_version") or 0),
            lb_problem=str(data.get("lb_problem") or ""),
            on_demand_reason=str(data.get("on_demand_reason") or ""),
        )


def _opt_int(value: Any) -> int | None:
    return int(value) if value is not None else None
