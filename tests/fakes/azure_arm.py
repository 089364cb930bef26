"""A fake of the Azure Resource Manager REST calls the Azure adapter makes, over real HTTP.

Covers virtual machines, network interfaces, public IPs, network security groups and virtual
networks in one resource group: PUT (answered 201 with an `Azure-AsyncOperation` status URL,
as ARM does), GET (VMs with `$expand=instanceView`, and `.../instanceView`), PATCH of tags,
DELETE (202 + status URL; 204 when already gone) and list. Time passes as ARM's does, not as
its clients poll: a VM is `Creating` for `vm_create_seconds` and then `Succeeded` or `Failed`
whether or not anyone waits on its operation, and `Deleting` for `vm_delete_seconds` (or
until `release_deletions()` when `hold_deletions` is set) before it disappears; a network
resource's PUT operation stays InProgress for `network_create_seconds`. `stall_seconds`
delays every answer (a hung ARM).

It refuses what ARM refuses, with ARM's bodies (tests/fakes/azure_errors_bodies.py):
- a NIC in use by a VM, or an IP or NSG in use by a NIC, cannot be deleted;
- a NIC whose VM was deleted, or whose VM PUT was refused, is reserved for
  `nic_reservation_seconds` (Azure: 180 s): deleting it or attaching it answers 400
  `NicReservedForAnotherVm`;
- `$expand=instanceView` on the VM list without `$filter` is a 400 ("Virtual Machines - List");
- customData that is not base64 or longer than 87,380 characters (65,535 bytes decoded) is a
  400 `InvalidParameter` ("OSProfile.customData");
- references must exist; requests without a bearer token are refused.
- two security rules of an NSG with the same priority and direction are a 400
  `SecurityRuleConflict`, a priority outside 100-4096 a 400 `SecurityRuleInvalidPriority`.
Spot VMs are evicted the way their eviction policy and the NIC's deleteOption say.

Boot mode (`boot=True`, or `--boot` on the command line; tests/fakes/azure_boot.py): every VM
that reaches Succeeded runs its custom data as a local process with its own loopback address,
which is also its public IP's `ipAddress`; deleting or evicting it kills the process. Each
VM gets an Instance Metadata Service of its own at `<fake>/vm/<name>` (Scheduled Events: a
Spot eviction first posts a `Preempt` event), answered without a bearer token, as IMDS is.
For a person trying it, `GET /_fake/vms` lists the booted VMs and
`POST /_fake/vms/<name>/preempt[?notice_seconds=N]` or `.../crash` evicts one or kills its
processes (no token either: these are the fake's own controls, not ARM's).
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.types import Location
from tests.fakes import azure_errors_bodies as bodies
from tests.fakes.azure_boot import (
    PREEMPT_NOTICE_SECONDS,
    SCHEDULED_EVENTS_API_VERSIONS,
    BootFarm,
)
from tests.fakes.json_http import JsonHTTPFake, Reply, Request, serve_until_interrupted

_RES = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"(?P<type>Microsoft\.\w+/\w+)"
)
VM = "Microsoft.Compute/virtualMachines"
NIC = "Microsoft.Network/networkInterfaces"
IP = "Microsoft.Network/publicIPAddresses"
NSG = "Microsoft.Network/networkSecurityGroups"
VNET = "Microsoft.Network/virtualNetworks"
Key = tuple[str, str]
CUSTOM_DATA_MAX_CHARS = 87380
"""65,535 bytes (OSProfile.customData's documented limit), base64-encoded."""
_LINKS = ("virtualMachine", "ipConfiguration", "networkInterfaces", "ipAddress")
"""Read-only properties ARM fills in itself; a PUT that updates a resource keeps them."""


def zone_key(location: Location) -> tuple[str, str | None]:
    suffix = location.zone.rsplit("-", 1)[-1]
    return location.region, suffix if suffix.isdigit() else None


@dataclass
class _VmClock:
    """When a VM's creation ends (and how), and when its deletion does."""

    ready_at: float
    failure: dict[str, Any] | None = None
    gone_at: float | None = None
    evict_at: float | None = None


class FakeAzureARM(JsonHTTPFake):
    """In-memory ARM for one subscription; the knobs below are what tests program."""

    def __init__(
        self,
        subscription: str = "sub-0000",
        groups: tuple[str, ...] = ("spotserve",),
        *,
        nic_reservation_seconds: float = 180.0,
        boot: bool = False,
        boot_root: Path | None = None,
    ) -> None:
        super().__init__()
        self.farm = BootFarm(boot_root) if boot else None
        self.subscription = subscription
        self.groups = set(groups)
        self.resources: dict[Key, dict[str, Any]] = {}
        self.sync_failures: dict[tuple[str, str | None], tuple[int, dict[str, Any]]] = {}
        self.async_failures: dict[tuple[str, str | None], dict[str, Any]] = {}
        self.evicted: list[str] = []
        self.auth_rejected = False
        self.vm_create_seconds = 0.0
        self.vm_delete_seconds = 0.0
        self.hold_deletions = False
        self.nic_reservation_seconds = nic_reservation_seconds
        self.stall_seconds = 0.0
        self._clocks: dict[str, _VmClock] = {}
        self._reserved: dict[str, tuple[float, str]] = {}
        self.network_create_seconds = 0.0
        self._ops: dict[str, tuple[str, str, str, float]] = {}
        self._ids = itertools.count(1)
        self.route("PUT", _RES + r"/(?P<name>[^/]+)", self._put)
        self.route("GET", _RES + r"/(?P<name>[^/]+)", self._get)
        self.route("GET", _RES + r"/(?P<name>[^/]+)/instanceView", self._instance_view)
        self.route("PATCH", _RES + r"/(?P<name>[^/]+)", self._patch)
        self.route("DELETE", _RES + r"/(?P<name>[^/]+)", self._delete)
        self.route("GET", _RES, self._list)
        self.route("GET", r"/vm/(?P<vm>[^/]+)/metadata/scheduledevents", self._scheduled_events)
        self.route("GET", r"/_fake/vms", self._booted_vms)
        self.route("POST", r"/_fake/vms/(?P<vm>[^/]+)/(?P<act>preempt|crash)", self._act_on_vm)
        self.route(
            "GET",
            r"/subscriptions/[^/]+/providers/[^/]+/locations/[^/]+/operations/(?P<op>[^/]+)",
            self._status,
        )

    # ---- knobs -------------------------------------------------------------------------

    def refuse_capacity(self, location: Location) -> None:
        """VM creation starts, then fails with (Zonal)AllocationFailed."""
        zonal = zone_key(location)[1] is not None
        failure = bodies.ZONAL_ALLOCATION_FAILED if zonal else bodies.ALLOCATION_FAILED
        self.fail_creation(location, failure["code"], failure["message"])

    def fail_creation(self, location: Location, code: str, message: str) -> None:
        """VM PUTs there are accepted, then the VM ends in provisioningState Failed with
        `ProvisioningState/failed/<code>` in its instance view."""
        self.async_failures[zone_key(location)] = {"code": code, "message": message}

    def exceed_quota(self, location: Location) -> None:
        self.fail_vm_put(location, 409, bodies.quota_exceeded(location.region, spot=True))

    def fail_vm_put(self, location: Location, status: int, body: dict[str, Any]) -> None:
        """The VM PUT itself is answered `status` with `body`."""
        self.sync_failures[zone_key(location)] = (status, body)

    def reject_credentials(self) -> None:
        self.auth_rejected = True

    def preempt(self, instance_id: str, notice_seconds: float = 0.0) -> None:
        """Evict a Spot VM. In boot mode a `Preempt` scheduled event is posted first, and the
        eviction comes `notice_seconds` later (Azure gives at least 30 s). Eviction policy
        Delete deletes the VM like a DELETE would: it shows provisioningState `Deleting` (for
        `vm_delete_seconds`, or until `release_deletions` when deletions are held), then is
        gone with its disks ("Use Azure Spot Virtual Machines", Eviction policy; "States and
        billing status of Azure Virtual Machines")."""
        with self.lock:
            vm = self.resources[(VM, instance_id.lower())]
            assert vm["properties"].get("priority") == "Spot", "only Spot VMs are evicted"
            booted = self.farm.find(instance_id) if self.farm else None
            if booted is not None:
                booted.post_preempt(notice_seconds)
            clock = self._clocks.setdefault(instance_id.lower(), _VmClock(ready_at=0.0))
            clock.evict_at = time.monotonic() + notice_seconds
            self._advance()

    def _evict(self, vm: dict[str, Any]) -> None:
        props = vm["properties"]
        if props.get("evictionPolicy") == "Delete":
            self._start_deleting(vm)
        else:
            props["instanceView"] = _view("deallocated")
            if self.farm is not None:
                self.farm.kill(vm["name"])
        self.evicted.append(vm["name"])

    def delete_outside(self, instance_id: str) -> None:
        """Someone deletes the VM in the portal: a plain DELETE that spotserve did not make."""
        with self.lock:
            self._start_deleting(self.resources[(VM, instance_id.lower())])

    def expire_nic_reservations(self) -> None:
        """Let the 180 s (`nic_reservation_seconds`) run out now."""
        with self.lock:
            self._reserved.clear()

    def release_deletions(self) -> None:
        """Let VMs held in `Deleting` (see `hold_deletions`) finish deleting."""
        with self.lock:
            self.hold_deletions = False
            self._advance()

    def tags_of(self, instance_id: str) -> dict[str, str]:
        return dict(self.resources[(VM, instance_id.lower())].get("tags", {}))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            self._advance()
            found = self.resources.get((kind, name.lower()))
            return copy.deepcopy(found) if found is not None else None

    def names(self, kind: str) -> list[str]:
        with self.lock:
            self._advance()
            return sorted(r["name"] for (k, _), r in self.resources.items() if k == kind)

    # ---- routes ------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Reply:
        if self.stall_seconds:
            time.sleep(self.stall_seconds)
        if request.path.startswith(("/vm/", "/_fake/")):  # metadata, test controls: no token
            with self.lock:
                self._advance()
                return super().dispatch(request)
        token = request.headers.get("authorization", "")
        if self.auth_rejected or not token.startswith("Bearer "):
            with self.lock:
                self.requests.append(request)
            body = bodies.INVALID_TOKEN if token else bodies.AUTHENTICATION_FAILED
            return Reply(401, body)
        with self.lock:
            self._advance()
            return super().dispatch(request)

    def _put(self, m: re.Match[str], req: Request) -> Reply:
        if m["rg"] not in self.groups:
            return Reply(404, bodies.group_not_found(m["rg"]))
        kind, name, body = m["type"], m["name"], copy.deepcopy(req.body or {})
        where = (body.get("location", ""), (body.get("zones") or [None])[0])
        rid = self._id(m["rg"], kind, name)
        if kind == VM and where in self.sync_failures:
            self._reserve_nics(body, rid)
            return Reply(*self.sync_failures[where])
        problem = self._check(kind, name, body)
        if problem:
            return Reply(400, problem)
        resource = {**body, "id": rid, "name": name, "type": kind}
        props = resource.setdefault("properties", {})
        old = self.resources.get((kind, name.lower()))
        for link in _LINKS:
            if old is not None and link in old["properties"]:
                props[link] = old["properties"][link]
        props["provisioningState"] = "Creating" if kind == VM else "Succeeded"
        if kind == VM:
            props["instanceView"] = {"statuses": [_provisioning("creating")]}
        self._link(kind, resource)
        self.resources[(kind, name.lower())] = resource
        if kind == VM:
            self._clocks[name.lower()] = _VmClock(
                ready_at=time.monotonic() + self.vm_create_seconds,
                failure=self.async_failures.get(where),
            )
        return self._accepted(201, resource, ("put", kind, name))

    def _check(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        props = body.get("properties", {})
        if kind == VM:
            if props.get("evictionPolicy") and props.get("priority") != "Spot":
                return bodies.arm_error(
                    "EvictionPolicyCanBeSetOnlyOnAzureSpotVirtualMachines",
                    "Eviction policy can be set only on Azure Spot Virtual Machines.",
                )
            if not _valid_custom_data(props.get("osProfile", {}).get("customData", "")):
                return bodies.CUSTOM_DATA_INVALID
            refs = [n["id"] for n in props.get("networkProfile", {}).get("networkInterfaces", [])]
            for ref in refs:
                nic = self._by_id(ref)
                if nic is not None and self._reservation(nic["name"]):
                    return bodies.nic_reserved(self._reserved[nic["name"].lower()][1])
        elif kind == NSG:
            return _security_rules_problem(props.get("securityRules", []))
        elif kind == NIC:
            refs = [props.get("networkSecurityGroup", {}).get("id")]
            for config in props.get("ipConfigurations", []):
                refs += [
                    config["properties"]["subnet"]["id"],
                    config["properties"].get("publicIPAddress", {}).get("id"),
                ]
        else:
            refs = []
        for ref in filter(None, refs):
            if self._by_id(ref) is None:
                return bodies.arm_error(
                    "InvalidResourceReference",
                    f"Resource {ref} referenced by resource {name} was not found.",
                )
        return None

    def _link(self, kind: str, resource: dict[str, Any]) -> None:
        props = resource["properties"]
        if kind == VNET:
            for subnet in props.get("subnets", []):
                subnet["id"] = f"{resource['id']}/subnets/{subnet['name']}"
        elif kind == IP:
            address = (
                self.farm.next_address() if self.farm else f"203.0.113.{next(self._ids) % 250 + 2}"
            )
            props.setdefault("ipAddress", address)
        elif kind == NIC:
            nsg = self._by_id(props.get("networkSecurityGroup", {}).get("id", ""))
            if nsg is not None:
                users = nsg["properties"].setdefault("networkInterfaces", [])
                if {"id": resource["id"]} not in users:
                    users.append({"id": resource["id"]})
            for config in props.get("ipConfigurations", []):
                ip = self._by_id(config["properties"].get("publicIPAddress", {}).get("id", ""))
                if ip is not None:
                    config_id = f"{resource['id']}/ipConfigurations/{config['name']}"
                    ip["properties"]["ipConfiguration"] = {"id": config_id}
        elif kind == VM:
            for ref in props.get("networkProfile", {}).get("networkInterfaces", []):
                self._by_id(ref["id"])["properties"]["virtualMachine"] = {"id": resource["id"]}

    def _get(self, m: re.Match[str], req: Request) -> Reply:
        found = self.resources.get((m["type"], m["name"].lower()))
        if found is None:
            return Reply(404, bodies.not_found(m["type"], m["name"], m["rg"]))
        return Reply(200, _shown(found, req.query.get("$expand") == "instanceView"))

    def _instance_view(self, m: re.Match[str], req: Request) -> Reply:
        found = self.resources.get((m["type"], m["name"].lower()))
        if m["type"] != VM or found is None:
            return Reply(404, bodies.not_found(m["type"], m["name"], m["rg"]))
        return Reply(200, found["properties"].get("instanceView", {"statuses": []}))

    def _patch(self, m: re.Match[str], req: Request) -> Reply:
        found = self.resources.get((m["type"], m["name"].lower()))
        if found is None:
            return Reply(404, bodies.not_found(m["type"], m["name"], m["rg"]))
        found["tags"] = dict((req.body or {}).get("tags", {}))
        return Reply(200, found)

    def _delete(self, m: re.Match[str], req: Request) -> Reply:
        kind, found = m["type"], self.resources.get((m["type"], m["name"].lower()))
        if found is None:
            return Reply(204)
        refused = self._in_use(kind, found)
        if refused is not None:
            return Reply(400, refused)
        if kind == VM:
            if found["properties"]["provisioningState"] != "Deleting":
                self._start_deleting(found)
        else:
            del self.resources[(kind, found["name"].lower())]
            self._reserved.pop(found["name"].lower(), None)
        return self._accepted(202, None, ("delete", kind, found["name"]))

    def _in_use(self, kind: str, found: dict[str, Any]) -> dict[str, Any] | None:
        """Why ARM would refuse to delete `found` now, as its error body; None if it would not."""
        props, rid = found["properties"], found["id"]
        if kind == NIC:
            vm = props.get("virtualMachine")
            if vm and self._by_id(vm["id"]) is not None:
                return bodies.nic_in_use(rid, vm["id"])
            if self._reservation(found["name"]):
                return bodies.nic_reserved(self._reserved[found["name"].lower()][1])
        elif kind == IP:
            config = props.get("ipConfiguration")
            if config and self._by_id(config["id"]) is not None:
                return bodies.public_ip_in_use(rid, config["id"])
        elif kind == NSG:
            users = [u["id"] for u in props.get("networkInterfaces", []) if self._by_id(u["id"])]
            if users:
                return bodies.nsg_in_use(rid, users)
        return None

    def _list(self, m: re.Match[str], req: Request) -> Reply:
        if m["rg"] not in self.groups:
            return Reply(404, bodies.group_not_found(m["rg"]))
        expand = req.query.get("$expand") == "instanceView"
        if m["type"] == VM and expand and not req.query.get("$filter"):
            # "Virtual Machines - List" (learn.microsoft.com/rest/api/compute/virtual-machines/list):
            # instanceView "can only be specified if a valid $filter option is specified".
            return Reply(400, bodies.LIST_EXPAND_WITHOUT_FILTER)
        found = [
            _shown(r, expand)
            for (k, _), r in sorted(self.resources.items())
            if k == m["type"] and _matches(r, req.query.get("$filter"))
        ]
        return Reply(200, {"value": found})

    def _status(self, m: re.Match[str], req: Request) -> Reply:
        """An operation's status follows the resource, as ARM's does: a VM PUT is InProgress
        while the VM is Creating, a VM DELETE while it still exists."""
        op = self._ops.get(m["op"])
        if op is None:
            return Reply(404, bodies.arm_error("NotFound", "operation not found"))
        verb, kind, name, started = op
        body: dict[str, Any] = {"name": m["op"], "status": "Succeeded"}
        vm = self.resources.get((VM, name.lower())) if kind == VM else None
        slow = time.monotonic() < started + self.network_create_seconds
        if verb == "put" and kind != VM and slow:
            body["status"] = "InProgress"
            return Reply(200, body, {"Retry-After": "1"})
        if verb == "put" and vm is not None:
            state = vm["properties"]["provisioningState"]
            clock = self._clocks.get(name.lower())
            if state == "Creating":
                body["status"] = "InProgress"
            elif state == "Failed" and clock is not None and clock.failure is not None:
                body.update(status="Failed", error=clock.failure)
        elif verb == "delete" and vm is not None:
            body["status"] = "InProgress"
        return Reply(200, body)

    # ---- time ---------------------------------------------------------------------------

    def _advance(self) -> None:
        """Move every VM along its clock: creations end (a VM in boot mode boots), evictions
        come due, deletions finish."""
        now = time.monotonic()
        for name, clock in list(self._clocks.items()):
            vm = self.resources.get((VM, name))
            if vm is None:
                del self._clocks[name]
                continue
            props = vm["properties"]
            if props["provisioningState"] == "Creating" and now >= clock.ready_at:
                props["provisioningState"] = "Failed" if clock.failure else "Succeeded"
                props["instanceView"] = (
                    {"statuses": [bodies.provisioning_failed_status(clock.failure)]}
                    if clock.failure
                    else _view("running")
                )
                if not clock.failure:
                    self._boot(vm)
            if clock.evict_at is not None and now >= clock.evict_at:
                clock.evict_at = None
                self._evict(vm)
            gone = clock.gone_at is not None and now >= clock.gone_at
            if props["provisioningState"] == "Deleting" and gone and not self.hold_deletions:
                self._remove_vm(vm)

    def _start_deleting(self, vm: dict[str, Any]) -> None:
        """A VM being deleted is shut down first: in boot mode its process dies now."""
        if self.farm is not None:
            self.farm.kill(vm["name"])
        props = vm["properties"]
        props["provisioningState"] = "Deleting"
        statuses = props.get("instanceView", {}).get("statuses", [])
        power = [s for s in statuses if s["code"].startswith("PowerState/")]
        props["instanceView"] = {"statuses": [_provisioning("deleting"), *power]}
        clock = self._clocks.setdefault(vm["name"].lower(), _VmClock(ready_at=0.0))
        clock.gone_at = time.monotonic() + self.vm_delete_seconds

    def _remove_vm(self, vm: dict[str, Any]) -> None:
        del self.resources[(VM, vm["name"].lower())]
        self._clocks.pop(vm["name"].lower(), None)
        self._reserve_nics(vm, vm["id"])
        for ref in vm["properties"].get("networkProfile", {}).get("networkInterfaces", []):
            nic = self._by_id(ref["id"])
            if nic is None:
                continue
            nic["properties"].pop("virtualMachine", None)
            if ref.get("properties", {}).get("deleteOption") == "Delete":
                del self.resources[(NIC, nic["name"].lower())]

    def _reserve_nics(self, vm_body: dict[str, Any], vm_id: str) -> None:
        """Azure holds a NIC for 180 s after its VM is deleted, or its VM PUT fails, answering
        `NicReservedForAnotherVm` meanwhile (Azure/karpenter-provider-azure#92: after a failed
        VM create; microsoft/AzureTRE#4474, gardenlinux/gardenlinux#4133: after a delete)."""
        until = time.monotonic() + self.nic_reservation_seconds
        refs = vm_body.get("properties", {}).get("networkProfile", {}).get("networkInterfaces", [])
        for ref in refs:
            nic = self._by_id(ref["id"])
            if nic is not None:
                self._reserved[nic["name"].lower()] = (until, vm_id)

    def _reservation(self, nic_name: str) -> bool:
        until = self._reserved.get(nic_name.lower(), (0.0, ""))[0]
        return time.monotonic() < until

    # ---- boot mode ---------------------------------------------------------------------

    def _boot(self, vm: dict[str, Any]) -> None:
        """Run the VM's custom data, once per VM: a PUT that updates a running VM does not
        run it again (cloud-init runs custom data on the first boot only)."""
        if self.farm is None or self.farm.find(vm["name"]) is not None:
            return
        custom_data = vm["properties"].get("osProfile", {}).get("customData")
        address = self._public_address(vm)
        if custom_data and address:
            self.farm.boot(vm["name"], custom_data, address, f"{self.url}/vm/{vm['name']}")

    def _public_address(self, vm: dict[str, Any]) -> str | None:
        for ref in vm["properties"].get("networkProfile", {}).get("networkInterfaces", []):
            nic = self._by_id(ref["id"])
            for config in (nic or {}).get("properties", {}).get("ipConfigurations", []):
                ip_ref = config["properties"].get("publicIPAddress", {}).get("id", "")
                ip = self._by_id(ip_ref)
                if ip is not None:
                    return str(ip["properties"]["ipAddress"])
        return None

    def _scheduled_events(self, m: re.Match[str], req: Request) -> Reply:
        """Scheduled Events as IMDS answers them ("Azure Instance Metadata Service" and
        "Scheduled Events for Linux VMs"): `Metadata: true` is required and a request
        carrying X-Forwarded-For is refused (both 400), api-version must be a known one."""
        if req.headers.get("metadata") != "true" or "x-forwarded-for" in req.headers:
            return Reply(400, {"error": "Bad request. Required metadata header not specified"})
        version = req.query.get("api-version")
        if version is None:
            return Reply(400, bodies.imds_no_api_version(SCHEDULED_EVENTS_API_VERSIONS))
        if version not in SCHEDULED_EVENTS_API_VERSIONS:
            return Reply(400, bodies.imds_bad_api_version(SCHEDULED_EVENTS_API_VERSIONS))
        booted = self.farm.find(m["vm"]) if self.farm else None
        if booted is None:
            return Reply(404, {"error": "Not found"})
        return Reply(200, booted.scheduled_events())

    def _booted_vms(self, m: re.Match[str], req: Request) -> Reply:
        """The test/operator view of boot mode: each VM's address, process and directory."""
        vms = list(self.farm.vms.values()) if self.farm else []
        listed = [
            {"name": v.name, "address": v.address, "pid": v.process.pid, "alive": v.alive(),
             "dir": str(v.root)}
            for v in vms
        ]  # fmt: skip
        return Reply(200, {"value": listed})

    def _act_on_vm(self, m: re.Match[str], req: Request) -> Reply:
        """`preempt` (a Spot eviction; `?notice_seconds=N`, default 30 as Azure gives) or
        `crash` (its processes die; ARM still shows it running)."""
        vm = self.resources.get((VM, m["vm"].lower()))
        if vm is None:
            return Reply(404, bodies.not_found(VM, m["vm"], "?"))
        if m["act"] == "crash":
            booted = self.farm.find(m["vm"]) if self.farm else None
            if booted is None:
                return Reply(409, bodies.arm_error("NotBooted", f"{m['vm']} has no process"))
            booted.kill()
            return Reply(200, {"name": vm["name"], "crashed": True})
        if vm["properties"].get("priority") != "Spot":
            return Reply(409, bodies.arm_error("NotSpot", "only Spot VMs are evicted"))
        notice = float(req.query.get("notice_seconds", PREEMPT_NOTICE_SECONDS))
        self.preempt(vm["name"], notice_seconds=notice)
        return Reply(200, {"name": vm["name"], "evicted_in_seconds": notice})

    def stop(self) -> None:
        """Stop serving and kill every VM's process."""
        super().stop()
        if self.farm is not None:
            self.farm.stop()

    # ---- helpers -----------------------------------------------------------------------

    def _accepted(
        self, status: int, body: dict[str, Any] | None, op: tuple[str, str, str]
    ) -> Reply:
        op_id = f"op-{next(self._ids)}"
        self._ops[op_id] = (*op, time.monotonic())
        provider = op[1].split("/")[0]
        url = (
            f"{self.url}/subscriptions/{self.subscription}/providers/{provider}"
            f"/locations/fake/operations/{op_id}?api-version=2024-01-01"
        )
        return Reply(status, body, {"Azure-AsyncOperation": url, "Retry-After": "0"})

    def _id(self, group: str, kind: str, name: str) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{group}/providers/{kind}/{name}"

    def _by_id(self, rid: str) -> dict[str, Any] | None:
        parts = rid.split("/")
        if len(parts) < 9:
            return None
        resource = self.resources.get((f"{parts[6]}/{parts[7]}", parts[8].lower()))
        if resource is None or len(parts) == 9:
            return resource
        children = [
            *resource["properties"].get("subnets", []),
            *(
                {**c, "id": f"{resource['id']}/ipConfigurations/{c['name']}"}
                for c in resource["properties"].get("ipConfigurations", [])
            ),
        ]
        return next((s for s in children if s.get("id", "").lower() == rid.lower()), None)


def _shown(resource: dict[str, Any], expand_instance_view: bool) -> dict[str, Any]:
    """A VM's model view leaves out its instance view unless `$expand=instanceView`."""
    if resource["type"] == VM and not expand_instance_view:
        shown = copy.deepcopy(resource)
        shown["properties"].pop("instanceView", None)
        return shown
    return resource


def _matches(resource: dict[str, Any], odata_filter: str | None) -> bool:
    """The one `$filter` the VM list documents: `virtualMachineScaleSet/id eq '<id>'`."""
    if not odata_filter:
        return True
    wanted = odata_filter.split(" eq ", 1)[-1].strip("'\" ")
    scale_set = resource["properties"].get("virtualMachineScaleSet", {}).get("id", "")
    return bool(scale_set) and scale_set.lower() == wanted.lower()


def _security_rules_problem(rules: list[dict[str, Any]]) -> dict[str, Any] | None:
    """ARM's refusal of an NSG's rules: a priority outside 100-4096, or two rules with the
    same priority and direction ("Network security groups", Security rules)."""
    seen: dict[tuple[object, object], str] = {}
    for rule in rules:
        props = rule.get("properties", {})
        priority = props.get("priority")
        if not isinstance(priority, int) or not 100 <= priority <= 4096:
            return bodies.security_rule_invalid_priority(rule.get("name", ""), priority)
        key = (priority, props.get("direction"))
        if key in seen:
            return bodies.security_rule_conflict(seen[key], rule.get("name", ""))
        seen[key] = rule.get("name", "")
    return None


def _valid_custom_data(encoded: str) -> bool:
    if len(encoded) > CUSTOM_DATA_MAX_CHARS:
        return False
    try:
        base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return False
    return True


def _provisioning(state: str) -> dict[str, Any]:
    return {"code": f"ProvisioningState/{state}", "level": "Info", "displayStatus": state}


def _view(power: str) -> dict[str, Any]:
    return {
        "statuses": [
            _provisioning("succeeded"),
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ]
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.fakes.azure_arm [--boot] [--boot-root DIR] [PORT]`: prints its URL."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fakes.azure_arm")
    parser.add_argument("port", nargs="?", default="0")
    parser.add_argument("--boot", action="store_true", help="VMs run their custom data")
    parser.add_argument("--boot-root", type=Path, help="where the VMs' directories go")
    parser.add_argument(
        "--nic-reservation-seconds",
        type=float,
        default=180.0,
        help="how long a deleted VM's NIC stays reserved (Azure: 180)",
    )
    parser.add_argument("--subscription", default="sub-0000")
    parser.add_argument("--resource-group", default="spotserve")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop() then kills the VMs' processes too
    fake = FakeAzureARM(
        args.subscription,
        (args.resource_group,),
        nic_reservation_seconds=args.nic_reservation_seconds,
        boot=args.boot,
        boot_root=args.boot_root,
    )
    serve_until_interrupted(fake, [args.port])


if __name__ == "__main__":
    main()
