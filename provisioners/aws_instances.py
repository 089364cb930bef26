"""Reading EC2's description of an instance into our `Instance`.

Preemption is recognised from the instance's state reason, as EC2 reports it for about an
hour after the instance ends: `Server.SpotInstanceTermination` (spot capacity or price
reclaimed the instance), `Server.SpotInstanceShutdown` (the same, for spot instances that
stop instead), and `Server.InsufficientInstanceCapacity` (EC2 accepted the launch, then
ended it for lack of capacity). Every other end is TERMINATED. A stopped instance was
stopped by someone else (ours terminate on shutdown): UNKNOWN, and still listed as owned
so that it is reaped rather than left costing money.
"""

from __future__ import annotations

from typing import Any

from policies.types import Location
from provisioners.aws_network import tag_map
from provisioners.base import (
    TAG_LAUNCH_TOKEN,
    TAG_REPLICA_ID,
    TAG_SERVICE,
    Instance,
    InstanceState,
)

TAG_PORT = "serve-port"
PREEMPTION_REASONS = frozenset(
    {
        "Server.SpotInstanceTermination",
        "Server.SpotInstanceShutdown",
        "Server.InsufficientInstanceCapacity",
    }
)
_ENDED = {"shutting-down", "terminated", "stopping", "stopped"}
_LIVE = {"pending": InstanceState.PENDING, "running": InstanceState.RUNNING}


def instance_state(raw: dict[str, Any]) -> tuple[InstanceState, str]:
    """Our state for one described instance, and the cloud's reason in words."""
    name = str(raw.get("State", {}).get("Name", ""))
    reason = raw.get("StateReason") or {}
    code = str(reason.get("Code") or "")
    detail = str(reason.get("Message") or code or name)
    if name in _LIVE:
        return _LIVE[name], name
    if name in _ENDED and code in PREEMPTION_REASONS:
        return InstanceState.PREEMPTED, detail
    if name in ("shutting-down", "terminated"):
        return InstanceState.TERMINATED, detail
    if name in ("stopping", "stopped"):
        return InstanceState.UNKNOWN, f"stopped outside spotserve: {detail}"
    return InstanceState.UNKNOWN, f"unexpected EC2 state {name!r}"


def to_instance(raw: dict[str, Any], region: str) -> Instance:
    tags = tag_map(raw)
    state, detail = instance_state(raw)
    zone = str(raw.get("Placement", {}).get("AvailabilityZone") or "")
    port = tags.get(TAG_PORT, "")
    return Instance(
        instance_id=str(raw["InstanceId"]),
        location=Location("aws", region, zone),
        spot=raw.get("InstanceLifecycle") == "spot",
        state=state,
        service=tags.get(TAG_SERVICE, ""),
        replica_id=_int(tags.get(TAG_REPLICA_ID)),
        launch_token=tags.get(TAG_LAUNCH_TOKEN, ""),
        address=raw.get("PublicIpAddress") or raw.get("PrivateIpAddress") or None,
        port=int(port) if port.isdigit() else None,
        detail=detail,
    )


def _int(text: str | None) -> int:
    return int(text) if text and text.lstrip("-").isdigit() else -1
