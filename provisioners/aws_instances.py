"""Reading EC2's description of an instance into our `Instance`.

The end of an instance is read from its state reason, which EC2 reports for about an hour
after the instance ends (EC2 API reference, "StateReason": the list of `Server.*` and
`Client.*` codes):

- `Server.SpotInstanceTermination` / `Server.SpotInstanceShutdown`: spot capacity or price
  reclaimed it: PREEMPTED.
- `Server.InsufficientInstanceCapacity` ("insufficient capacity available to satisfy the
  launch request"), `Client.VolumeLimitExceeded`, `Server.InternalError` and
  `Client.InternalError` / `Client.InvalidSnapshot.NotFound` ("... caused the instance to
  terminate during launch"): EC2 accepted the launch, then could not create the instance:
  REFUSED, with the error `launch` would have raised (`REFUSED_AT_LAUNCH`).
- `Client.InstanceInitiatedShutdown`: the VM shut itself down (ours terminate on shutdown):
  its program ended it: TERMINATED.
- Any other end (`Client.UserInitiatedShutdown`: someone called TerminateInstances or
  StopInstances) is LOST, unless the instance carries `TAG_TERMINATED_BY`, which spotserve's
  own `terminate` sets before it calls TerminateInstances: then it is TERMINATED. EC2 gives
  the same state reason to every API caller, so the tag is the only way to tell ours apart.
"""

from __future__ import annotations

from typing import Any

from policies.types import Location
from provisioners.aws_network import tag_map
from provisioners.base import (
    MANAGED_BY,
    TAG_CONTROLLER_ID,
    TAG_LAUNCH_TOKEN,
    TAG_PORT,
    TAG_REPLICA_ID,
    TAG_SERVICE,
    TAG_TERMINATED_BY,
    Instance,
    InstanceState,
)
from provisioners.errors import (
    CapacityUnavailable,
    InvalidRequest,
    ProvisionError,
    QuotaExceeded,
    TransientError,
)
from provisioners.startup_script import recorded_agent_port

PREEMPTION_REASONS = frozenset({"Server.SpotInstanceTermination", "Server.SpotInstanceShutdown"})
SELF_SHUTDOWN = "Client.InstanceInitiatedShutdown"
REFUSED_AT_LAUNCH: dict[str, type[ProvisionError]] = {
    "Server.InsufficientInstanceCapacity": CapacityUnavailable,
    "Client.VolumeLimitExceeded": QuotaExceeded,
    "Server.InternalError": TransientError,
    "Client.InternalError": InvalidRequest,
    "Client.InvalidSnapshot.NotFound": InvalidRequest,
}
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
    if name not in _ENDED:
        return InstanceState.UNKNOWN, f"unexpected EC2 state {name!r}"
    if code in PREEMPTION_REASONS:
        return InstanceState.PREEMPTED, detail
    if code in REFUSED_AT_LAUNCH:
        return InstanceState.REFUSED, detail
    if code == SELF_SHUTDOWN:
        return InstanceState.TERMINATED, f"the instance shut itself down: {detail}"
    if tag_map(raw).get(TAG_TERMINATED_BY) == MANAGED_BY:
        return InstanceState.TERMINATED, f"terminated by spotserve: {detail}"
    return InstanceState.LOST, f"{name} outside spotserve: {detail}"


def finished(raw: dict[str, Any]) -> bool:
    """Nothing is left for spotserve to delete or learn: the instance has ended and either
    ended itself (TERMINATED) or was terminated by spotserve, which read its state first."""
    ended = str(raw.get("State", {}).get("Name", "")) in ("shutting-down", "terminated")
    ours = tag_map(raw).get(TAG_TERMINATED_BY) == MANAGED_BY
    return ended and (ours or instance_state(raw)[0] == InstanceState.TERMINATED)


def refusal(raw: dict[str, Any], location: Location) -> ProvisionError | None:
    """The error of an instance EC2 ended during its launch, as `launch` would raise it."""
    reason = raw.get("StateReason") or {}
    code = str(reason.get("Code") or "")
    kind = REFUSED_AT_LAUNCH.get(code)
    if kind is None:
        return None
    return kind(str(reason.get("Message") or code), location=location.key, code=code)


def to_instance(raw: dict[str, Any], region: str) -> Instance:
    tags = tag_map(raw)
    state, detail = instance_state(raw)
    zone = str(raw.get("Placement", {}).get("AvailabilityZone") or "")
    location = Location("aws", region, zone)
    port = tags.get(TAG_PORT, "")
    return Instance(
        instance_id=str(raw["InstanceId"]),
        location=location,
        spot=raw.get("InstanceLifecycle") == "spot",
        state=state,
        service=tags.get(TAG_SERVICE, ""),
        replica_id=_int(tags.get(TAG_REPLICA_ID)),
        launch_token=tags.get(TAG_LAUNCH_TOKEN, ""),
        address=raw.get("PublicIpAddress") or raw.get("PrivateIpAddress") or None,
        port=int(port) if port.isdigit() else None,
        detail=detail,
        controller_id=tags.get(TAG_CONTROLLER_ID, ""),
        error=refusal(raw, location) if state == InstanceState.REFUSED else None,
        agent_port=recorded_agent_port(tags),
    )


def _int(text: str | None) -> int:
    return int(text) if text and text.lstrip("-").isdigit() else -1
