"""Azure adapter: azure-mgmt-compute VMs (Spot or Regular) with their NSG, public IP and NIC.

Launch creates the NSG, public IP and NIC (quick ARM calls, each waited on for at most
`network_wait_seconds` in all; a slower answer is a TransientError and the parts are reaped
as orphans), then starts the VM PUT and returns once ARM has accepted it: a PENDING instance.
A VM whose creation then fails (AllocationFailed, ZonalAllocationFailed, SkuNotAvailable...)
stays in provisioningState Failed with `ProvisioningState/failed/<code>` in its instance view,
which `get` and `list_owned` report as REFUSED with the error `launch` would have raised.

The bundle comes first: `launch` stages the version's bundle in the installation's Blob
container (provisioners/azure_blob_store.py, made on first use) and hands the boot script its
SAS URL, so a store that refuses fails the launch before anything exists in ARM. `release`
empties the service's prefix there; `sign_source` signs Azure Blob file mounts for the agent.
The NSG lets the service port in from SERVE_INGRESS_CIDR and the agent port only from
SERVE_CONTROLLER_CIDR.

Preemption: a Spot VM is created with eviction policy Delete, so Azure deletes it (and its
disks) on eviction; while it is being deleted it shows provisioningState Deleting. Its NIC is
attached with deleteOption Detach and therefore stays; its tags carry the ownership tags plus
the marker `serve-vm-state` (provisioners/azure_states.py):
- `pending` when the NIC is made, before the VM PUT;
- `created` as soon as ARM has accepted the VM PUT (201). Not later (the first time `get` sees
  the VM Succeeded): a Spot VM may be evicted while still Creating, or between two looks, and
  a VM that was accepted but never seen Succeeded would then read as never created; and a
  read that writes would make `get` and `list_owned` do I/O beyond reading. Not earlier
  either: a VM PUT refused on the spot (quota, SkuNotAvailable) leaves a NIC saying
  `pending`, so its leftovers are never mistaken for an evicted VM. A VM that fails after
  being accepted is still there (Failed) and reads REFUSED, whatever the marker says.
- `deleting` before spotserve deletes the VM.
A Spot VM Deleting, or gone, while its NIC does not say `deleting` was removed by Azure, not
by us: PREEMPTED (a gone one only if the NIC says `created`). A person deleting it by hand in
the portal looks the same; Azure keeps no per-VM record that separates the two outside the
activity log. A Regular VM gone that way is LOST.

Teardown never waits: each `terminate` call deletes what it can in dependency order (the VM;
then the NIC, which Azure holds for 180 s after its VM went: `NicReservedForAnotherVm`; then
the public IP and NSG, which cannot go while the NIC holds them) and returns True only when
ARM answers "nothing to delete" for all four. Until then `list_owned` keeps listing whatever
is left (NIC, IP or NSG, each tagged) as the instance, so the orphan reaper finishes it.

`list_owned` costs four list calls plus one instance-view GET per VM whose state the model
view cannot tell: `$expand=instanceView` on the VM list is only valid with a scale-set
`$filter` ("Virtual Machines - List"), and `statusOnly=true` exists only on the
subscription-wide "List All", which needs subscription-wide read rights and leaves out tags.

Every call has the shared connect/read timeouts. Constructors do no I/O.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from azure.core import exceptions as aexc
from azure.core.credentials import AccessToken
from azure.core.polling import LROPoller
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as nm

from policies.types import Location, Offer
from provisioners.azure_blob_store import NO_STORAGE_ACCOUNT, AzureBlobStore
from provisioners.azure_errors import (
    CREDENTIALS_HINT,
    DELETE_NOT_YET,
    azure_calls,
    error_code,
    from_azure_error,
)
from provisioners.azure_inventory import (
    Parts,
    gather,
    instance_of,
    ip_of,
    marker,
    provisioning,
    statuses_of,
    vm_instance,
)
from provisioners.azure_models import prepare_models
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
    vm_tags,
    vnet_body,
    vnet_name,
)
from provisioners.azure_ssh import ssh_public_key
from provisioners.azure_states import (
    CREATED_MARK,
    DELETING_MARK,
    PENDING_MARK,
    Reading,
    needs_instance_view,
)
from provisioners.base import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    TAG_VM_STATE,
    CheckResult,
    Instance,
    InstanceState,
    LaunchRequest,
    ResourceRequest,
    agent_port,
    controller_cidr,
    ingress_cidr,
)
from provisioners.catalog import Catalog, default_catalog
from provisioners.errors import CredentialsError, ProvisionError, TransientError
from provisioners.object_store import ObjectStore, SignedObject, stage_bundle
from provisioners.replica_names import resource_name
from provisioners.startup_script import build_boot_script

ARM_SCOPE = "https://management.azure.com/.default"
_GONE_STATUSES = (200, 204)
"""A DELETE answered 204 (nothing there) or 200 (deleted at once) leaves nothing behind; 202
means the deletion is under way."""


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
        installation: str = "",
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
        network_wait_seconds: float = 60.0,
    ) -> None:
        self.installation = installation
        self.subscription_id = subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID") or None
        self.resource_group = (
            resource_group or os.environ.get("SERVE_AZURE_RESOURCE_GROUP") or "spotserve"
        )
        self.arm_endpoint = arm_endpoint or os.environ.get("SERVE_AZURE_ARM_ENDPOINT") or None
        self.image = image or os.environ.get("SERVE_AZURE_IMAGE") or DEFAULT_IMAGE
        self.ingress_source = nsg_source(ingress_cidr(os.environ))
        self.controller_source = nsg_source(controller_cidr(os.environ))
        self.agent_port = agent_port(os.environ)
        self.poll_interval = poll_interval
        self.retry_total = retry_total
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.network_wait_seconds = network_wait_seconds
        self._ssh_key = ssh_key
        self._catalog = catalog
        self._credential = credential
        self._clients: _Clients | None = None
        self._vnets: dict[str, str] = {}
        self._store: ObjectStore | None = None

    def check(self) -> CheckResult:
        try:
            c = self._connect()
            with azure_calls(None):
                next(iter(c.compute.virtual_machines.list(self.resource_group, **c.options)), None)
        except ProvisionError as err:
            hint = CREDENTIALS_HINT if isinstance(err, CredentialsError) else ""
            return CheckResult(self.cloud, usable=False, reason=str(err), hint=hint)
        return CheckResult(
            self.cloud, True, f"subscription {self.subscription_id}, group {self.resource_group}"
        )

    def offers(self, resources: ResourceRequest) -> list[Offer]:
        return self.catalog.offers(self.cloud, resources)

    def launch(self, request: LaunchRequest) -> Instance:
        prepare_models()  # before building the VM body in this thread
        names = Names(resource_name(request, max_len=57))
        # The bundle first: a store that refuses leaves nothing created in ARM.
        bundle_url = stage_bundle(self.bundle_store, request)
        body = self._vm(request, names, bundle_url)  # refuses what Azure would (size) first
        c = self._connect()
        where = request.location.key
        try:
            address = self._create_network(c, request, names)
            c.compute.virtual_machines.begin_create_or_update(
                self.resource_group, names.vm, body, polling=False, **c.options
            )
            self._mark_nic(c, names, {**tags_for(request), TAG_VM_STATE: CREATED_MARK})
        except aexc.AzureError as exc:
            if error_code(exc) == "InvalidResourceReference":
                # The region's subnet we remembered is gone (someone deleted the virtual
                # network): forget it, so that the next launch makes it again.
                self._vnets.pop(request.location.region, None)
            refused = from_azure_error(exc, where)
            if not isinstance(refused, TransientError):
                with contextlib.suppress(ProvisionError):
                    self.terminate(names.vm, request.location)
            raise refused from exc
        accepted = Reading(InstanceState.PENDING, "VM creation accepted")
        return from_tags(names.vm, vm_tags(request, self.agent_port), accepted, address)

    def get(self, instance_id: str, location: Location) -> Instance | None:
        c = self._connect()
        names = Names(instance_id)
        with azure_calls(location.key):
            vm = self._find(c.compute.virtual_machines.get, names.vm, c, expand="instanceView")
            if vm is None:
                return self._leftover(c, names)
            if not is_ours(vm.tags):
                return None
            nic_marker = None
            if provisioning(vm) == "Deleting":  # evicted, or deleted by us? the NIC says
                nic_marker = marker(self._find(c.network.network_interfaces.get, names.nic, c))
            ip = self._find(c.network.public_ip_addresses.get, names.public_ip, c)
        view = vm.properties.instance_view if vm.properties else None
        return vm_instance(vm, statuses_of(view), nic_marker, ip_of(ip))

    def terminate(self, instance_id: str, location: Location) -> bool:
        c = self._connect()
        names = Names(instance_id)
        with azure_calls(location.key):
            self._mark_deleting(c, names)
            if not self._gone(c.compute.virtual_machines.begin_delete, names.vm, c):
                return False
            if not self._gone(c.network.network_interfaces.begin_delete, names.nic, c):
                return False
            ip_gone = self._gone(c.network.public_ip_addresses.begin_delete, names.public_ip, c)
            nsg_gone = self._gone(c.network.network_security_groups.begin_delete, names.nsg, c)
        return ip_gone and nsg_gone

    def release(self, service: str) -> bool:
        """Empty the service's bundle prefix in the Blob container. Without a storage account
        configured no bundle can have been staged by this configuration, and there is
        nothing to ask: True, so that `serve down` of a service without a workdir
        finishes."""
        try:
            return self.bundle_store.delete_service(service)
        except CredentialsError as err:
            if err.code == NO_STORAGE_ACCOUNT:
                return True
            raise

    def sign_source(self, source: str, seconds: int) -> list[SignedObject] | None:
        """Signed URLs for an Azure Blob file mount (`SignsBucketSources`), from the store."""
        return self.bundle_store.sign_source(source, seconds)

    @property
    def bundle_store(self) -> ObjectStore:
        """The installation's Blob container; made on first use (constructors do no I/O,
        and the store's constructor none either)."""
        if self._store is None:
            self._store = AzureBlobStore(self.installation)
        return self._store

    def list_owned(
        self, service: str | None = None, regions: Collection[str] | None = None
    ) -> list[Instance]:
        c = self._connect()
        with azure_calls(None):
            found = self._inventory(c, service, regions)
            for parts in found.values():
                self._add_instance_view(c, parts)
        return [instance_of(name, parts) for name, parts in found.items()]

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = default_catalog()
        return self._catalog

    def _connect(self) -> _Clients:
        prepare_models()  # before any thread reads a model from an answer
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

    # ---- launch ------------------------------------------------------------------------

    def _create_network(self, c: _Clients, request: LaunchRequest, names: Names) -> str | None:
        """NSG, public IP and NIC for one VM, each tagged; the NIC starts `pending`. Returns
        the public address. Waits on ARM at most `network_wait_seconds` in all."""
        rg, net = self.resource_group, c.network
        deadline = time.monotonic() + self.network_wait_seconds
        subnet_id = self._subnet(c, request, deadline)
        nsg_poller = net.network_security_groups.begin_create_or_update(
            rg,
            names.nsg,
            nsg_body(request, self.ingress_source, self.controller_source, self.agent_port),
            **c.options,
        )
        ip_poller = net.public_ip_addresses.begin_create_or_update(
            rg, names.public_ip, public_ip_body(request), **c.options
        )
        nsg = _settled(nsg_poller, f"network security group {names.nsg}", deadline)
        ip = _settled(ip_poller, f"public IP {names.public_ip}", deadline)
        tags = {**tags_for(request), TAG_VM_STATE: PENDING_MARK}
        nic = nic_body(request, tags, subnet_id, str(ip.id), str(nsg.id))
        nic_poller = net.network_interfaces.begin_create_or_update(rg, names.nic, nic, **c.options)
        _settled(nic_poller, f"network interface {names.nic}", deadline)
        return ip_of(ip)

    def _subnet(self, c: _Clients, request: LaunchRequest, deadline: float) -> str:
        region = request.location.region
        if region not in self._vnets:
            body = vnet_body(region, request.controller_id)
            poller = c.network.virtual_networks.begin_create_or_update(
                self.resource_group, vnet_name(region), body, **c.options
            )
            vnet = _settled(poller, f"virtual network {vnet_name(region)}", deadline)
            subnets = vnet.properties.subnets if vnet.properties else None
            if not subnets:
                raise TransientError(f"virtual network in {region} came back without a subnet")
            self._vnets[region] = str(subnets[0].id)
        return self._vnets[region]

    def _vm(
        self, request: LaunchRequest, names: Names, bundle_url: str | None
    ) -> cm.VirtualMachine:
        nic_id = (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Network/networkInterfaces/{names.nic}"
        )
        if self._ssh_key is None:
            self._ssh_key = ssh_public_key()
        script = build_boot_script(
            request, bundle_url=bundle_url, cloud=self.cloud, agent_port=self.agent_port
        )
        return vm_body(
            request, names.vm, nic_id, script, self._ssh_key, self.image, self.agent_port
        )

    def _mark_nic(self, c: _Clients, names: Names, tags: dict[str, str]) -> None:
        c.network.network_interfaces.update_tags(
            self.resource_group, names.nic, nm.TagsObject(tags=tags), **c.options
        )

    # ---- terminate ---------------------------------------------------------------------

    def _mark_deleting(self, c: _Clients, names: Names) -> None:
        nic = self._find(c.network.network_interfaces.get, names.nic, c)
        if nic is not None and marker(nic) != DELETING_MARK:
            self._mark_nic(c, names, {**dict(nic.tags or {}), TAG_VM_STATE: DELETING_MARK})

    def _gone(self, begin_delete: Callable[..., LROPoller[Any]], name: str, c: _Clients) -> bool:
        """Start deleting `name`; True if ARM says nothing is left of it, False while it (or
        something holding it) is still going away."""
        try:
            status = begin_delete(
                self.resource_group, name, polling=False, cls=_status_code, **c.options
            ).result()
        except aexc.ResourceNotFoundError:
            return True
        except aexc.HttpResponseError as exc:
            if error_code(exc) in DELETE_NOT_YET:
                return False
            raise
        return status in _GONE_STATUSES

    # ---- reading -----------------------------------------------------------------------

    def _leftover(self, c: _Clients, names: Names) -> Instance | None:
        """A replica whose VM is gone, from whichever of its parts is left."""
        nic = self._find(c.network.network_interfaces.get, names.nic, c)
        parts = Parts(nic=nic if nic is not None and is_ours(nic.tags) else None)
        if parts.nic is None:
            ip = self._find(c.network.public_ip_addresses.get, names.public_ip, c)
            parts.ip = ip if ip is not None and is_ours(ip.tags) else None
        if parts.nic is None and parts.ip is None:
            nsg = self._find(c.network.network_security_groups.get, names.nsg, c)
            parts.nsg = nsg if nsg is not None and is_ours(nsg.tags) else None
        return instance_of(names.vm, parts) if parts.tags() else None

    def _inventory(
        self, c: _Clients, service: str | None, regions: Collection[str] | None
    ) -> dict[str, Parts]:
        """Every replica of ours with something left in the group, from four lists."""
        rg, net = self.resource_group, c.network

        def wanted(tags: dict[str, str] | None) -> bool:
            return is_ours(tags, service) and (regions is None or region_of(tags) in regions)

        return gather(
            c.compute.virtual_machines.list(rg, **c.options),
            net.network_interfaces.list(rg, **c.options),
            net.public_ip_addresses.list(rg, **c.options),
            net.network_security_groups.list(rg, **c.options),
            wanted,
        )

    def _add_instance_view(self, c: _Clients, parts: Parts) -> None:
        """The VM's instance-view statuses, when its state depends on them (one GET)."""
        if parts.vm is None or not needs_instance_view(provisioning(parts.vm)):
            return
        try:
            view = c.compute.virtual_machines.instance_view(
                self.resource_group, str(parts.vm.name), **c.options
            )
        except aexc.ResourceNotFoundError:
            parts.vm = None  # deleted since the list: read what is left
            return
        parts.statuses = statuses_of(view)

    def _find(self, getter: Callable[..., Any], name: str, c: _Clients, **kwargs: Any) -> Any:
        try:
            return getter(self.resource_group, name, **kwargs, **c.options)
        except aexc.ResourceNotFoundError:
            return None


def _settled(poller: LROPoller[Any], what: str, deadline: float) -> Any:
    """The created resource, or TransientError if ARM has not finished by the deadline."""
    result = poller.result(timeout=max(0.0, deadline - time.monotonic()))
    if not poller.done():
        raise TransientError(f"{what} is still being created; try again later")
    return result


def _status_code(pipeline_response: Any, deserialized: Any, headers: Any) -> int:
    """`cls` for a delete started without polling: the HTTP status ARM answered."""
    return int(pipeline_response.http_response.status_code)


def _default_credential() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
