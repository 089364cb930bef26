"""A fake of the Azure Resource Manager REST calls the Azure adapter makes, over real HTTP.

Covers virtual machines, network interfaces, public IPs, network security groups and virtual
networks in one resource group: PUT (answered 201 with an `Azure-AsyncOperation` status URL,
as ARM does), GET (VMs with `$expand=instanceView`), PATCH of tags, DELETE (202 + status
URL; 204 when already gone), list, and a VM's `.../instanceView`. It enforces the reference rules ARM enforces (a NIC in
use by a VM, or an IP or NSG in use by a NIC, cannot be deleted; references must exist),
refuses customData that is not base64 or longer than 87,380 characters (65,535 bytes decoded)
as ARM does, refuses `$expand=instanceView` on the VM list without `$filter` ("Virtual Machines
- List"), refuses requests without a bearer token, and evicts Spot VMs the way their eviction policy
and the NIC's deleteOption say.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import re
import time
from typing import Any

from policies.types import Location
from tests.fakes import azure_errors_bodies as bodies
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


def zone_key(location: Location) -> tuple[str, str | None]:
    suffix = location.zone.rsplit("-", 1)[-1]
    return location.region, suffix if suffix.isdigit() else None


class FakeAzureARM(JsonHTTPFake):
    """In-memory ARM for one subscription; the knobs below are what tests program."""

    def __init__(self, subscription: str = "sub-0000", groups: tuple[str, ...] = ("spotserve",)):
        super().__init__()
        self.subscription = subscription
        self.groups = set(groups)
        self.resources: dict[Key, dict[str, Any]] = {}
        self.sync_failures: dict[tuple[str, str | None], tuple[int, dict[str, Any]]] = {}
        self.async_failures: dict[tuple[str, str | None], dict[str, Any]] = {}
        self.evicted: list[str] = []
        self.auth_rejected = False
        self.stall_seconds = 0.0
        self._ops: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.route("PUT", _RES + r"/(?P<name>[^/]+)", self._put)
        self.route("GET", _RES + r"/(?P<name>[^/]+)", self._get)
        self.route("GET", _RES + r"/(?P<name>[^/]+)/instanceView", self._instance_view)
        self.route("PATCH", _RES + r"/(?P<name>[^/]+)", self._patch)
        self.route("DELETE", _RES + r"/(?P<name>[^/]+)", self._delete)
        self.route("GET", _RES, self._list)
        self.route(
            "GET",
            r"/subscriptions/[^/]+/providers/[^/]+/locations/[^/]+/operations/(?P<op>[^/]+)",
            self._status,
        )

    # ---- knobs -------------------------------------------------------------------------

    def refuse_capacity(self, location: Location) -> None:
        """VM creation starts, then its operation fails with (Zonal)AllocationFailed."""
        region, zone = zone_key(location)
        self.async_failures[(region, zone)] = (
            bodies.ZONAL_ALLOCATION_FAILED if zone else bodies.ALLOCATION_FAILED
        )

    def exceed_quota(self, location: Location) -> None:
        self.fail_vm_put(location, 409, bodies.quota_exceeded(location.region, spot=True))

    def fail_vm_put(self, location: Location, status: int, body: dict[str, Any]) -> None:
        """The VM PUT itself is answered `status` with `body`."""
        self.sync_failures[zone_key(location)] = (status, body)

    def reject_credentials(self) -> None:
        self.auth_rejected = True

    def preempt(self, instance_id: str) -> None:
        with self.lock:
            vm = self.resources[(VM, instance_id.lower())]
            props = vm["properties"]
            assert props.get("priority") == "Spot", "only Spot VMs are evicted"
            if props.get("evictionPolicy") == "Delete":
                self._remove_vm(vm)
            else:
                props["instanceView"] = _view("deallocated")
            self.evicted.append(instance_id)

    def tags_of(self, instance_id: str) -> dict[str, str]:
        return dict(self.resources[(VM, instance_id.lower())].get("tags", {}))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        found = self.resources.get((kind, name.lower()))
        return copy.deepcopy(found) if found is not None else None

    def names(self, kind: str) -> list[str]:
        return sorted(r["name"] for (k, _), r in self.resources.items() if k == kind)

    # ---- routes ------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Reply:
        if self.stall_seconds:
            time.sleep(self.stall_seconds)
        token = request.headers.get("authorization", "")
        if self.auth_rejected or not token.startswith("Bearer "):
            with self.lock:
                self.requests.append(request)
            body = bodies.INVALID_TOKEN if token else bodies.AUTHENTICATION_FAILED
            return Reply(401, body)
        return super().dispatch(request)

    def _put(self, m: re.Match[str], req: Request) -> Reply:
        if m["rg"] not in self.groups:
            return Reply(404, bodies.group_not_found(m["rg"]))
        kind, name, body = m["type"], m["name"], copy.deepcopy(req.body or {})
        where = (body.get("location", ""), (body.get("zones") or [None])[0])
        if kind == VM and where in self.sync_failures:
            return Reply(*self.sync_failures[where])
        if kind == VM and not _valid_custom_data(
            body.get("properties", {}).get("osProfile", {}).get("customData", "")
        ):
            return Reply(400, bodies.CUSTOM_DATA_INVALID)
        problem = self._check_references(kind, name, body)
        if problem:
            return Reply(400, bodies.arm_error(*problem))
        rid = self._id(m["rg"], kind, name)
        resource = {**body, "id": rid, "name": name, "type": kind}
        props = resource.setdefault("properties", {})
        props["provisioningState"] = "Creating" if kind == VM else "Succeeded"
        self._link(kind, resource)
        self.resources[(kind, name.lower())] = resource
        failure = self.async_failures.get(where) if kind == VM else None
        return self._accepted(201, resource, ("put", kind, name, failure))

    def _check_references(
        self, kind: str, name: str, body: dict[str, Any]
    ) -> tuple[str, str] | None:
        props = body.get("properties", {})
        if kind == VM:
            if props.get("evictionPolicy") and props.get("priority") != "Spot":
                return (
                    "EvictionPolicyCanBeSetOnlyOnAzureSpotVirtualMachines",
                    "Eviction policy can be set only on Azure Spot Virtual Machines.",
                )
            refs = [n["id"] for n in props.get("networkProfile", {}).get("networkInterfaces", [])]
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
                return (
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
            props["ipAddress"] = f"203.0.113.{next(self._ids) % 250 + 2}"
        elif kind == NIC:
            nsg = self._by_id(props.get("networkSecurityGroup", {}).get("id", ""))
            if nsg is not None:
                nsg["properties"].setdefault("networkInterfaces", []).append({"id": resource["id"]})
            for config in props.get("ipConfigurations", []):
                ip = self._by_id(config["properties"].get("publicIPAddress", {}).get("id", ""))
                if ip is not None:
                    ip["properties"]["ipConfiguration"] = {"id": resource["id"]}
        elif kind == VM:
            for ref in props.get("networkProfile", {}).get("networkInterfaces", []):
                self._by_id(ref["id"])["properties"]["virtualMachine"] = {"id": resource["id"]}

    def _get(self, m: re.Match[str], req: Request) -> Reply:
        found = self.resources.get((m["type"], m["name"].lower()))
        if found is None:
            return Reply(404, bodies.not_found(m["type"], m["name"], m["rg"]))
        return Reply(200, self._shown(found, req))

    def _instance_view(self, m: re.Match[str], req: Request) -> Reply:
        found = self.resources.get((m["type"], m["name"].lower()))
        if m["type"] != VM or found is None:
            return Reply(404, bodies.not_found(m["type"], m["name"], m["rg"]))
        return Reply(200, found["properties"].get("instanceView", {"statuses": []}))

    def _shown(self, resource: dict[str, Any], req: Request) -> dict[str, Any]:
        if resource["type"] == VM and req.query.get("$expand") != "instanceView":
            shown = copy.deepcopy(resource)
            shown["properties"].pop("instanceView", None)
            return shown
        return resource

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
        props = found["properties"]
        in_use = {
            NIC: ("NicInUse", props.get("virtualMachine")),
            IP: ("PublicIPAddressCannotBeDeleted", props.get("ipConfiguration")),
            NSG: (
                "InUseNetworkSecurityGroupCannotBeDeleted",
                (props.get("networkInterfaces") or [None])[0],
            ),
        }.get(kind)
        if in_use and in_use[1] and self._by_id(in_use[1]["id"]) is not None:
            return Reply(
                400, bodies.arm_error(in_use[0], f"{found['name']} is in use by {in_use[1]['id']}")
            )
        if kind == VM:
            self._remove_vm(found)
        else:
            del self.resources[(kind, found["name"].lower())]
        return self._accepted(202, None, ("delete", kind, found["name"], None))

    def _remove_vm(self, vm: dict[str, Any]) -> None:
        del self.resources[(VM, vm["name"].lower())]
        for ref in vm["properties"].get("networkProfile", {}).get("networkInterfaces", []):
            nic = self._by_id(ref["id"])
            if nic is None:
                continue
            nic["properties"].pop("virtualMachine", None)
            if ref.get("properties", {}).get("deleteOption") == "Delete":
                del self.resources[(NIC, nic["name"].lower())]

    def _list(self, m: re.Match[str], req: Request) -> Reply:
        if m["rg"] not in self.groups:
            return Reply(404, bodies.group_not_found(m["rg"]))
        expand = req.query.get("$expand") == "instanceView"
        if m["type"] == VM and expand and not req.query.get("$filter"):
            return Reply(400, bodies.LIST_EXPAND_WITHOUT_FILTER)
        found = [
            self._shown(r, req)
            for (k, _), r in sorted(self.resources.items())
            if k == m["type"] and _matches(r, req.query.get("$filter"))
        ]
        return Reply(200, {"value": found})

    def _status(self, m: re.Match[str], req: Request) -> Reply:
        op = self._ops.get(m["op"])
        if op is None:
            return Reply(404, bodies.arm_error("NotFound", "operation not found"))
        verb, kind, name, failure = op.pop("pending", (None, None, None, None))
        if verb == "put" and kind == VM:
            vm = self.resources.get((VM, name.lower()))
            if vm is not None:
                vm["properties"]["provisioningState"] = "Failed" if failure else "Succeeded"
                vm["properties"]["instanceView"] = _view("stopped" if failure else "running")
            if failure:
                op.update(status="Failed", error=failure)
        return Reply(200, {k: v for k, v in op.items() if k != "pending"})

    # ---- helpers -----------------------------------------------------------------------

    def _accepted(
        self, status: int, body: dict[str, Any] | None, pending: tuple[Any, ...]
    ) -> Reply:
        op_id = f"op-{next(self._ids)}"
        self._ops[op_id] = {
            "name": op_id,
            "status": "Succeeded",
            "startTime": "2025-01-01T00:00:00Z",
            "pending": pending,
        }
        provider = pending[1].split("/")[0]
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
        subnets = resource["properties"].get("subnets", [])
        return next((s for s in subnets if s.get("id", "").lower() == rid.lower()), None)


def _matches(resource: dict[str, Any], odata_filter: str | None) -> bool:
    """The one `$filter` the VM list documents: `virtualMachineScaleSet/id eq '<id>'`."""
    if not odata_filter:
        return True
    wanted = odata_filter.split(" eq ", 1)[-1].strip("'\" ")
    scale_set = resource["properties"].get("virtualMachineScaleSet", {}).get("id", "")
    return bool(scale_set) and scale_set.lower() == wanted.lower()


def _valid_custom_data(encoded: str) -> bool:
    if len(encoded) > CUSTOM_DATA_MAX_CHARS:
        return False
    try:
        base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return False
    return True


def _view(power: str) -> dict[str, Any]:
    return {
        "statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info"},
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ]
    }


if __name__ == "__main__":
    serve_until_interrupted(FakeAzureARM())
