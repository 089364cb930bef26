"""What an Azure VM's state, or the leftovers of a gone one, mean to spotserve. Pure: no I/O.

Three readings combine: the VM's provisioningState (in every model view), its instance-view
statuses (`ProvisioningState/failed/<code>`, `PowerState/<state>`: "States and billing status
of Azure Virtual Machines"), and the `serve-vm-state` marker spotserve keeps on the VM's NIC
(`pending` when the NIC is made, `created` once ARM accepted the VM PUT, `deleting` before
spotserve deletes the VM; see provisioners/azure.py for why those points).

    VM provisioningState   also                           state
    Creating                                              PENDING
    Deleting               marker deleting                TERMINATED (spotserve deletes it)
    Deleting               Spot, marker not deleting      PREEMPTED  (evicted: policy Delete)
    Deleting               Regular, marker not deleting   LOST       (deleted outside spotserve)
    Failed                 not PowerState/running         REFUSED    (ProvisioningState/failed/X)
    Failed                 PowerState/running             RUNNING    (an update failed; it runs)
    any other              PowerState/running             RUNNING
    any other              PowerState/starting            PENDING
    any other              stopping, stopped, deallocat*  TERMINATED (its program shut it down)
    any other              no power state yet             PENDING (UNKNOWN if Succeeded)

    no VM, parts left      marker deleting                TERMINATED
    no VM, parts left      marker created, Spot           PREEMPTED  (evicted and deleted)
    no VM, parts left      anything else, or no NIC left  LOST
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provisioners.base import InstanceState

PENDING_MARK = "pending"
CREATED_MARK = "created"
DELETING_MARK = "deleting"

_POWER_STATES = {
    "PowerState/running": InstanceState.RUNNING,
    "PowerState/starting": InstanceState.PENDING,
    "PowerState/stopping": InstanceState.TERMINATED,
    "PowerState/stopped": InstanceState.TERMINATED,
    "PowerState/deallocating": InstanceState.TERMINATED,
    "PowerState/deallocated": InstanceState.TERMINATED,
}
_FAILED_PREFIX = "ProvisioningState/failed/"


@dataclass(frozen=True)
class Status:
    """One instance-view status: `code` such as `PowerState/running`, and its message."""

    code: str
    message: str = ""


@dataclass(frozen=True)
class Reading:
    """A state, why, and for REFUSED the ARM code and message of the failure."""

    state: InstanceState
    detail: str
    failure: Status | None = None


def needs_instance_view(provisioning_state: str) -> bool:
    """Whether the instance view can change the reading (it cannot while the VM is being
    created or deleted), so list_owned asks for it only then."""
    return provisioning_state not in ("Creating", "Deleting")


def vm_reading(
    provisioning_state: str, statuses: Sequence[Status], spot: bool, marker: str | None
) -> Reading:
    where = f"provisioningState {provisioning_state}"
    if provisioning_state == "Creating":
        return Reading(InstanceState.PENDING, where)
    if provisioning_state == "Deleting":
        return _deleting(spot, marker)
    power = next((s.code for s in statuses if s.code in _POWER_STATES), None)
    failure = next((s for s in statuses if s.code.startswith(_FAILED_PREFIX)), None)
    if provisioning_state == "Failed" and power != "PowerState/running":
        code = failure.code.removeprefix(_FAILED_PREFIX) if failure else "ProvisioningFailed"
        message = failure.message if failure else "VM provisioning failed"
        return Reading(InstanceState.REFUSED, f"{where}: {code}", Status(code, message))
    if power is not None:
        return Reading(_POWER_STATES[power], f"{where}, {power}")
    unknown = provisioning_state == "Succeeded"
    return Reading(InstanceState.UNKNOWN if unknown else InstanceState.PENDING, where)


def leftover_reading(marker: str | None, spot: bool) -> Reading:
    if marker == DELETING_MARK:
        return Reading(InstanceState.TERMINATED, "VM deleted by spotserve; deleting what is left")
    if marker == CREATED_MARK and spot:
        return Reading(InstanceState.PREEMPTED, "Spot VM evicted (eviction policy Delete)")
    return Reading(InstanceState.LOST, "VM gone without spotserve deleting it; parts remain")


def _deleting(spot: bool, marker: str | None) -> Reading:
    if marker == DELETING_MARK:
        return Reading(InstanceState.TERMINATED, "provisioningState Deleting (by spotserve)")
    if spot:
        return Reading(
            InstanceState.PREEMPTED, "Spot VM being evicted (provisioningState Deleting)"
        )
    return Reading(InstanceState.LOST, "provisioningState Deleting, not by spotserve")
