"""Azure adapter: azure-mgmt-compute VMs (Spot or Regular) with their NSG, public IP and NIC.

Preemption: a Spot VM is created with eviction policy Delete, so Azure deletes it (and its
disks) on eviction. The VM's NIC is attached with deleteOption Detach and therefore stays;
its tags carry the ownership tags plus `serve-vm-state`, which the adapter sets to `created`
once the VM exists and to `deleting` before it deletes the VM itself. A missing Spot VM whose
NIC still says `created` was removed by Azure, not by us: `get` reports it PREEMPTED. (A
person deleting the VM by hand in the portal looks the same; Azure keeps no per-VM record
that separates the two outside the activity log.) The NIC also makes such leftovers visible
to `list_owned`, so the orphan reaper deletes them.

Every call waits on ARM's long-running-operation poller, with the shared connect/read
timeouts on each request. Constructors do no I/O.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from azure.core import exceptions as aexc
from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as nm

from policies.types import Location, Offer
from provisioners.azure_errors import CREDENTIALS_HINT, from_azure_error
from provisioners.azure_resources import (
    DEFAULT_IMAGE,
    Names,
    from_tags,
    is_ours,
    nic_body,
    nsg_body,
    nsg_source,
    public_ip_body,
    region_of,
    tags_for,
    vm_body,
    vm_state,
    vnet_body,
    vnet_name,
)
from provisioners.azure_ssh import ssh_public_key
from provisioners.base import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    TAG_SPOT,
    CheckResult,
    Instance,
    InstanceState,
    LaunchRequest,
    ResourceRequest,
    ingress_cidr,
)
from provisioners.catalog import Catalog, default_catalog
from provisioners.errors import CredentialsError, ProvisionError, TransientError
from provisioners.replica_names import resource_name
from provisioners.startup_script import build_startup_script

TAG_VM_STATE = "serve-vm-state"
ARM_SCOPE = "https://management.azure.com/.default"


@dataclass(frozen=True)
class _Clients:
    compute: ComputeManagementClient
    network: NetworkManagementClient
    options: dict[str, Any]


class _LocalEndpointToken:
    """A placeholder token for a plain-http (local fake) ARM endpoint: real ones never go there."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("local-endpoint", int(time.time()) + 3600)


class AzureProvisioner:
    """Azure Resource Manager through azure-mgmt-compute/network; raises only ProvisionErrors."""

    cloud = "azure"

    def __init__(
        self,
        *,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        catalog: Catalog | None = None,
        arm_endpoint: str | None = None,
        credential: Any = None,
        image: str | None = None,
        ssh_key: str | None = None,
        poll_interval: float = 5.0,
        retry_total: int = 3,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        self.subscription_id = subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID") or None
        self.resource_group = (
            resource_group or os.environ.get("SERVE_AZURE_RESOURCE_GROUP") or "spotserve"
        )
        self.arm_endpoint = arm_endpoint or os.environ.get("SERVE_AZURE_ARM_ENDPOINT") or None
        self.image = image or os.environ.get("SERVE_AZURE_IMAGE") or DEFAULT_IMAGE
        self.ingress_source = nsg_source(ingress_cidr(os.environ))
        self.poll_interval = poll_interval
        self.retry_total = retry_total
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._ssh_key = ssh_key
        self._catalog = catalog
        self._credential = credential
        self._clients: _Clients | None = None
        self._vnets: dict[str, str] = {}

    def check(self) -> CheckResult:
        try:
            c = self._connect()
            try:
                next(iter(c.compute.virtual_machines.list(self.resource_group, **c.options)), None)
            except aexc.AzureError as exc:
                raise from_azure_error(exc, None) from exc
        except ProvisionError as err:
            hint = CREDENTIALS_HINT if isinstance(err, CredentialsError) else ""
            return CheckResult(self.cloud, usable=False, reason=str(err), hint=hint)
        return CheckResult(
            self.cloud, True, f"subscription {self.subscription_id}, group {self.resource_group}"
        )

    def offers(self, resources: ResourceRequest) -> list[Offer]:
        return self.catalog.offers(self.cloud, resources)

    def launch(self, request: LaunchRequest) -> Instance:
        names = Names(resource_name(request, max_len=57))
        body = self._vm(request, names)  # refuses what Azure would (custom data size) first
        c = self._connect()
        where = request.location.key
        try:
            self._create_network(c, request, names)
            c.compute.virtual_machines.begin_create_or_update(
                self.resource_group, names.vm, body, **c.options
            ).result()
            self._mark_nic(c, names, {**tags_for(request), TAG_VM_STATE: "created"})
        except aexc.AzureError as exc:
            refused = from_azure_error(exc, where)
            if not isinstance(refused, TransientError):
                with contextlib.suppress(ProvisionError):
                    self.terminate(names.vm, request.location)
            raise refused from exc
        got = self.get(names.vm, request.location)
        if got is None:
            raise TransientError(f"VM {names.vm} was created but cannot be read", location=where)
        return got

    def get(self, instance_id: str, location: Location) -> Instance | None:
        c = self._connect()
        names = Names(instance_id)
        try:
            vm = c.compute.virtual_machines.get(
                self.resource_group, names.vm, expand="instanceView", **c.options
            )
            address = _ip_of(
                self._find(c.network.public_ip_addresses.get, names.public_ip, c.options)
            )
        except aexc.ResourceNotFoundError:
            return self._leftover(c, names)
        except aexc.AzureError as exc:
            raise from_azure_error(exc, location.key) from exc
        return _vm_instance(vm, address) if is_ours(vm.tags) else None

    def terminate(self, instance_id: str, location: Location) -> None:
        c = self._connect()
        names = Names(instance_id)
        try:
            nic = self._find(c.network.network_interfaces.get, names.nic, c.options)
            if nic is not None:
                self._mark_nic(c, names, {**dict(nic.tags or {}), TAG_VM_STATE: "deleting"})
            self._delete(c.compute.virtual_machines.begin_delete, names.vm, c.options)
            self._delete(c.network.network_interfaces.begin_delete, names.nic, c.options)
            self._delete(c.network.public_ip_addresses.begin_delete, names.public_ip, c.options)
            self._delete(c.network.network_security_groups.begin_delete, names.nsg, c.options)
        except aexc.AzureError as exc:
            raise from_azure_error(exc, location.key) from exc

    def list_owned(
        self, service: str | None = None, regions: Collection[str] | None = None
    ) -> list[Instance]:
        """Three list calls, plus one instance-view GET per VM of ours: `$expand=instanceView`
        on the VM list is only valid with a scale-set `$filter` ("Virtual Machines - List"),
        and `statusOnly=true` exists only on the subscription-wide "List All", which needs
        subscription-wide read rights and leaves out tags."""
        c = self._connect()
        rg = self.resource_group
        try:
            vms = [
                vm
                for vm in c.compute.virtual_machines.list(rg, **c.options)
                if is_ours(vm.tags, service) and _in(vm.tags, regions)
            ]
            for vm in vms:
                if vm.properties is not None:
                    vm.properties.instance_view = c.compute.virtual_machines.instance_view(
                        rg, str(vm.name), **c.options
                    )
            ips = {
                str(ip.name): _ip_of(ip)
                for ip in c.network.public_ip_addresses.list(rg, **c.options)
            }
            nics = list(c.network.network_interfaces.list(rg, **c.options))
        except aexc.AzureError as exc:
            raise from_azure_error(exc, None) from exc
        found = {
            str(vm.name): _vm_instance(vm, ips.get(Names(str(vm.name)).public_ip)) for vm in vms
        }
        for nic in nics:
            vm_name = str(nic.name).removesuffix("-nic")
            if vm_name not in found and is_ours(nic.tags, service) and _in(nic.tags, regions):
                found[vm_name] = _leftover_instance(vm_name, dict(nic.tags or {}))
        return list(found.values())

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = default_catalog()
        return self._catalog

    def _connect(self) -> _Clients:
        if self._clients is None:
            if not self.subscription_id:
                raise CredentialsError(f"AZURE_SUBSCRIPTION_ID is not set; {CREDENTIALS_HINT}")
            local = bool(self.arm_endpoint and self.arm_endpoint.startswith("http://"))
            credential = self._credential or (
                _LocalEndpointToken() if local else _default_credential()
            )
            kwargs: dict[str, Any] = {
                "polling_interval": self.poll_interval,
                "retry_total": self.retry_total,
                # azure-core hands these to its transport: every call, polls included.
                "connection_timeout": self.connect_timeout,
                "read_timeout": self.read_timeout,
            }
            if self.arm_endpoint:
                kwargs["base_url"] = self.arm_endpoint
            self._clients = _Clients(
                compute=ComputeManagementClient(credential, self.subscription_id, **kwargs),
                network=NetworkManagementClient(credential, self.subscription_id, **kwargs),
                # azure-core refuses bearer tokens over plain http unless told per call.
                options={"enforce_https": False} if local else {},
            )
        return self._clients

    def _create_network(self, c: _Clients, request: LaunchRequest, names: Names) -> None:
        """NSG, public IP and NIC for one VM, each tagged; the NIC starts as `pending`."""
        rg, net = self.resource_group, c.network
        subnet_id = self._subnet(c, request)
        nsg = net.network_security_groups.begin_create_or_update(
            rg, names.nsg, nsg_body(request, self.ingress_source), **c.options
        ).result()
        ip = net.public_ip_addresses.begin_create_or_update(
            rg, names.public_ip, public_ip_body(request), **c.options
        ).result()
        tags = {**tags_for(request), TAG_VM_STATE: "pending"}
        nic = nic_body(request, tags, subnet_id, str(ip.id), str(nsg.id))
        net.network_interfaces.begin_create_or_update(rg, names.nic, nic, **c.options).result()

    def _subnet(self, c: _Clients, request: LaunchRequest) -> str:
        region = request.location.region
        if region not in self._vnets:
            body = vnet_body(region, request.controller_id)
            vnet = c.network.virtual_networks.begin_create_or_update(
                self.resource_group, vnet_name(region), body, **c.options
            ).result()
            subnets = vnet.properties.subnets if vnet.properties else None
            if not subnets:
                raise TransientError(f"virtual network in {region} came back without a subnet")
            self._vnets[region] = str(subnets[0].id)
        return self._vnets[region]

    def _vm(self, request: LaunchRequest, names: Names) -> cm.VirtualMachine:
        nic_id = (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Network/networkInterfaces/{names.nic}"
        )
        if self._ssh_key is None:
            self._ssh_key = ssh_public_key()
        return vm_body(
            request, names.vm, nic_id, build_startup_script(request), self._ssh_key, self.image
        )

    def _mark_nic(self, c: _Clients, names: Names, tags: dict[str, str]) -> None:
        c.network.network_interfaces.update_tags(
            self.resource_group, names.nic, nm.TagsObject(tags=tags), **c.options
        )

    def _leftover(self, c: _Clients, names: Names) -> Instance | None:
        try:
            nic = self._find(c.network.network_interfaces.get, names.nic, c.options)
        except aexc.AzureError as exc:
            raise from_azure_error(exc, None) from exc
        if nic is None or not is_ours(nic.tags):
            return None
        return _leftover_instance(names.vm, dict(nic.tags or {}))

    def _find(self, getter: Any, name: str, options: dict[str, Any]) -> Any:
        try:
            return getter(self.resource_group, name, **options)
        except aexc.ResourceNotFoundError:
            return None

    def _delete(self, begin_delete: Any, name: str, options: dict[str, Any]) -> None:
        try:
            begin_delete(self.resource_group, name, **options).result()
        except aexc.ResourceNotFoundError:
            return


def _vm_instance(vm: cm.VirtualMachine, address: str | None) -> Instance:
    return from_tags(str(vm.name), dict(vm.tags or {}), vm_state(vm), address, _detail(vm))


def _in(tags: dict[str, str] | None, regions: Collection[str] | None) -> bool:
    return regions is None or region_of(tags) in regions


def _ip_of(ip: nm.PublicIPAddress | None) -> str | None:
    return ip.properties.ip_address if ip is not None and ip.properties else None


def _leftover_instance(vm_name: str, nic_tags: dict[str, str]) -> Instance:
    evicted = nic_tags.get(TAG_VM_STATE) == "created" and nic_tags.get(TAG_SPOT) == "true"
    if evicted:
        state, detail = (
            InstanceState.PREEMPTED,
            "Spot VM evicted (eviction policy Delete); its NIC remains",
        )
    else:
        state, detail = InstanceState.TERMINATED, "VM gone; its NIC remains until terminate"
    return from_tags(vm_name, nic_tags, state, None, detail)


def _detail(vm: cm.VirtualMachine) -> str:
    props = vm.properties or cm.VirtualMachineProperties()
    priority = getattr(props.priority, "value", props.priority)
    return f"provisioningState {props.provisioning_state}, priority {priority}"


def _default_credential() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
