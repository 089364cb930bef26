"""One replica's Azure resources gathered by name, and the Instance they add up to. Pure.

A replica is up to four resources named after its VM (`<vm>`, `<vm>-nic`, `<vm>-ip`,
`<vm>-nsg`), each tagged as ours. `Parts` holds which of them are there; `instance_of` reads
them with the rules of provisioners/azure_states.py: the VM when there is one (with its
instance-view statuses and its NIC's marker), else whatever is left (the NIC's marker when the
NIC is left; LOST when only the public IP or NSG is).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from azure.mgmt.compute import models as cm
from azure.mgmt.network import models as nm

from provisioners.azure_resources import from_tags, owner_of
from provisioners.azure_states import Status, leftover_reading, vm_reading
from provisioners.base import TAG_SPOT, TAG_VM_STATE, Instance


@dataclass
class Parts:
    """What is left of one replica, by kind."""

    vm: cm.VirtualMachine | None = None
    nic: nm.NetworkInterface | None = None
    ip: nm.PublicIPAddress | None = None
    nsg: nm.NetworkSecurityGroup | None = None
    statuses: list[Status] = field(default_factory=list)

    def tags(self) -> dict[str, str]:
        for part in (self.vm, self.nic, self.ip, self.nsg):
            if part is not None:
                return dict(part.tags or {})
        return {}


def gather(
    vms: Iterable[cm.VirtualMachine],
    nics: Iterable[nm.NetworkInterface],
    ips: Iterable[nm.PublicIPAddress],
    nsgs: Iterable[nm.NetworkSecurityGroup],
    wanted: Callable[[dict[str, str] | None], bool],
) -> dict[str, Parts]:
    """The wanted replicas in four listings, by VM name."""
    found: dict[str, Parts] = {}
    for vm in vms:
        if wanted(vm.tags):
            found.setdefault(str(vm.name), Parts()).vm = vm
    for nic in nics:
        if (owner := owner_of(str(nic.name))) and wanted(nic.tags):
            found.setdefault(owner, Parts()).nic = nic
    for ip in ips:
        if (owner := owner_of(str(ip.name))) and wanted(ip.tags):
            found.setdefault(owner, Parts()).ip = ip
    for nsg in nsgs:
        if (owner := owner_of(str(nsg.name))) and wanted(nsg.tags):
            found.setdefault(owner, Parts()).nsg = nsg
    return found


def instance_of(name: str, parts: Parts) -> Instance:
    if parts.vm is not None:
        return vm_instance(parts.vm, parts.statuses, marker(parts.nic), ip_of(parts.ip))
    tags = parts.tags()
    reading = leftover_reading(marker(parts.nic), tags.get(TAG_SPOT) == "true")
    return from_tags(name, tags, reading, None)


def vm_instance(
    vm: cm.VirtualMachine, statuses: list[Status], nic_marker: str | None, address: str | None
) -> Instance:
    tags = dict(vm.tags or {})
    reading = vm_reading(provisioning(vm), statuses, tags.get(TAG_SPOT) == "true", nic_marker)
    return from_tags(str(vm.name), tags, reading, address)


def provisioning(vm: cm.VirtualMachine) -> str:
    return str(vm.properties.provisioning_state or "") if vm.properties else ""


def statuses_of(view: cm.VirtualMachineInstanceView | None) -> list[Status]:
    if view is None or not view.statuses:
        return []
    return [Status(str(s.code or ""), str(s.message or "")) for s in view.statuses]


def marker(nic: nm.NetworkInterface | None) -> str | None:
    return (nic.tags or {}).get(TAG_VM_STATE) if nic is not None else None


def ip_of(ip: nm.PublicIPAddress | None) -> str | None:
    return ip.properties.ip_address if ip is not None and ip.properties else None
