"""Pure builders and readers for the Azure resources one replica owns.

A replica on Azure is a VM plus its network security group (two inbound rules: the service port
from the ingress CIDR, the agent port from the controller's CIDR), public IP and NIC, all named
after the VM and tagged with the ownership tags and the replica's location, so any one of them
left alone still says whose it is. The NIC is attached with deleteOption Detach, so it outlives
the VM: after a Spot eviction (eviction policy Delete removes the VM and its disks) the tagged
NIC is the cloud-side record that a replica existed there, until `terminate` deletes it. The
regional virtual network is shared by all replicas in a region and is not deleted per replica.
Pure: no I/O.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from azure.mgmt.compute import models as cm
from azure.mgmt.network import models as nm

from policies.types import Location
from provisioners.azure_errors import from_failed_provisioning
from provisioners.azure_states import Reading
from provisioners.base import (
    MANAGED_BY,
    TAG_AGENT_PORT,
    TAG_CONTROLLER_ID,
    TAG_LAUNCH_TOKEN,
    TAG_LOCATION,
    TAG_MANAGED_BY,
    TAG_PORT,
    TAG_REPLICA_ID,
    TAG_SERVICE,
    TAG_SPOT,
    Instance,
    LaunchRequest,
)
from provisioners.errors import InvalidRequest
from provisioners.startup_script import recorded_agent_port

ADMIN_USER = "spotserve"
DEFAULT_IMAGE = "microsoft-dsvm:ubuntu-hpc:2204:latest"
"""Ubuntu 22.04 HPC image with NVIDIA drivers and CUDA (publisher:offer:sku:version)."""
DEFAULT_DISK_GB = 128

CUSTOM_DATA_MAX_BYTES = 65535
"""OSProfile.customData (Compute REST reference): "The maximum length of the binary array is
65535 bytes" once base64-decoded; "Custom data on Azure virtual machines": "can't exceed 64 KB"."""
_SUFFIXES = ("-nic", "-ip", "-nsg")


@dataclass(frozen=True)
class Names:
    """The names of one replica's resources, all derived from the VM name."""

    vm: str

    @property
    def nic(self) -> str:
        return f"{self.vm}-nic"

    @property
    def public_ip(self) -> str:
        return f"{self.vm}-ip"

    @property
    def nsg(self) -> str:
        return f"{self.vm}-nsg"


def owner_of(resource_name: str) -> str | None:
    """The VM a NIC, public IP or NSG was made for, from its name; None for other names."""
    suffix = next((s for s in _SUFFIXES if resource_name.endswith(s)), None)
    return resource_name.removesuffix(suffix) if suffix else None


def vnet_name(region: str) -> str:
    return f"spotserve-{region}-vnet"


def tags_for(request: LaunchRequest) -> dict[str, str]:
    return {
        **request.ownership_tags(),
        TAG_PORT: str(request.port),
        TAG_LOCATION: request.location.key,
    }


def vm_tags(request: LaunchRequest, agent_port: int) -> dict[str, str]:
    """The VM's own tags: its resources' tags and the agent port it boots with."""
    return {**tags_for(request), TAG_AGENT_PORT: str(agent_port)}


def azure_zone(location: Location) -> str | None:
    """The catalog writes Azure zones as `<region>-<n>`; ARM wants just `<n>`."""
    suffix = location.zone.rsplit("-", 1)[-1]
    return suffix if location.zone != location.region and suffix.isdigit() else None


def vnet_body(region: str, controller_id: str) -> nm.VirtualNetwork:
    subnet = nm.Subnet(
        name="default", properties=nm.SubnetPropertiesFormat(address_prefix="10.240.0.0/20")
    )
    return nm.VirtualNetwork(
        location=region,
        tags={TAG_MANAGED_BY: MANAGED_BY, "serve-controller-id": controller_id},
        properties=nm.VirtualNetworkPropertiesFormat(
            address_space=nm.AddressSpace(address_prefixes=["10.240.0.0/16"]), subnets=[subnet]
        ),
    )


def nsg_source(cidr: str) -> str:
    """The rule's source for the ingress CIDR. Any IPv4 source (`0.0.0.0/0`) is written as the
    `Internet` service tag ("Network security groups": service tags; `sourceAddressPrefix` takes
    a CIDR, `*` or a tag): traffic from inside the virtual network is already let in by the
    default rule AllowVnetInBound, so the two allow the same, and the portal shows the intent.
    Any narrower CIDR is used as given."""
    return "Internet" if cidr.strip() == "0.0.0.0/0" else cidr.strip()


AGENT_RULE_PRIORITY = 1001
"""Right after the service port's rule (1000); NSG priorities are 100-4096, lower first."""


def nsg_body(
    request: LaunchRequest, source: str, agent_source: str, agent_port: int
) -> nm.NetworkSecurityGroup:
    """Two inbound rules: the service port from the ingress CIDR (the load balancer and the
    probes), and the agent's TLS port from the controller's CIDR only."""
    rules = [
        _inbound_rule("serve-port", 1000, source, request.port),
        _inbound_rule("serve-agent", AGENT_RULE_PRIORITY, agent_source, agent_port),
    ]
    return nm.NetworkSecurityGroup(
        location=request.location.region,
        tags=tags_for(request),
        properties=nm.NetworkSecurityGroupPropertiesFormat(security_rules=rules),
    )


def _inbound_rule(name: str, priority: int, source: str, port: int) -> nm.SecurityRule:
    return nm.SecurityRule(
        name=name,
        properties=nm.SecurityRulePropertiesFormat(
            protocol="Tcp",
            direction="Inbound",
            access="Allow",
            priority=priority,
            source_address_prefix=source,
            source_port_range="*",
            destination_address_prefix="*",
            destination_port_range=str(port),
        ),
    )


def public_ip_body(request: LaunchRequest) -> nm.PublicIPAddress:
    return nm.PublicIPAddress(
        location=request.location.region,
        tags=tags_for(request),
        sku=nm.PublicIPAddressSku(name="Standard"),
        properties=nm.PublicIPAddressPropertiesFormat(public_ip_allocation_method="Static"),
    )


def nic_body(
    request: LaunchRequest, tags: dict[str, str], subnet_id: str, ip_id: str, nsg_id: str
) -> nm.NetworkInterface:
    config = nm.NetworkInterfaceIPConfiguration(
        name="ipconfig1",
        properties=nm.NetworkInterfaceIPConfigurationPropertiesFormat(
            subnet=nm.Subnet(id=subnet_id),
            public_ip_address=nm.PublicIPAddress(id=ip_id),
            private_ip_allocation_method="Dynamic",
        ),
    )
    return nm.NetworkInterface(
        location=request.location.region,
        tags=tags,
        properties=nm.NetworkInterfacePropertiesFormat(
            ip_configurations=[config], network_security_group=nm.NetworkSecurityGroup(id=nsg_id)
        ),
    )


def vm_body(
    request: LaunchRequest,
    name: str,
    nic_id: str,
    script: str,
    ssh_key: str,
    image: str,
    agent_port: int,
) -> cm.VirtualMachine:
    """Spot: priority Spot, eviction policy Delete, max price -1 (never evicted for price)."""
    zone = azure_zone(request.location)
    properties = cm.VirtualMachineProperties(
        hardware_profile=cm.HardwareProfile(vm_size=request.offer.instance_type),
        storage_profile=_storage(request, image),
        os_profile=_os_profile(name, script, ssh_key),
        network_profile=cm.NetworkProfile(
            network_interfaces=[
                cm.NetworkInterfaceReference(
                    id=nic_id,
                    properties=cm.NetworkInterfaceReferenceProperties(
                        primary=True, delete_option="Detach"
                    ),
                )
            ]
        ),
        priority="Spot" if request.spot else "Regular",
    )
    if request.spot:
        properties.eviction_policy = "Delete"
        properties.billing_profile = cm.BillingProfile(max_price=-1)
    return cm.VirtualMachine(
        location=request.location.region,
        tags=vm_tags(request, agent_port),
        zones=[zone] if zone else None,
        properties=properties,
    )


def _storage(request: LaunchRequest, image: str) -> cm.StorageProfile:
    return cm.StorageProfile(
        image_reference=image_reference(request.resources.image_id or image),
        os_disk=cm.OSDisk(
            create_option="FromImage",
            delete_option="Delete",
            disk_size_gb=request.resources.disk_size or DEFAULT_DISK_GB,
            managed_disk=cm.ManagedDiskParameters(storage_account_type="Premium_LRS"),
        ),
    )


def custom_data(script: str) -> str:
    """The startup script as customData, refused here (before anything is created) when Azure
    would refuse it: more than 65,535 bytes."""
    raw = script.encode()
    if len(raw) > CUSTOM_DATA_MAX_BYTES:
        raise InvalidRequest(
            f"the replica startup script is {len(raw)} bytes; Azure custom data holds at most "
            f"{CUSTOM_DATA_MAX_BYTES} bytes (shorten `setup`/`run`/`envs`, or fetch large files "
            "from the script)",
            code="CustomDataTooLarge",
        )
    return base64.b64encode(raw).decode()


def _os_profile(name: str, script: str, ssh_key: str) -> cm.OSProfile:
    key = cm.SshPublicKey(path=f"/home/{ADMIN_USER}/.ssh/authorized_keys", key_data=ssh_key)
    return cm.OSProfile(
        computer_name=name,
        admin_username=ADMIN_USER,
        custom_data=custom_data(script),
        linux_configuration=cm.LinuxConfiguration(
            disable_password_authentication=True, ssh=cm.SshConfiguration(public_keys=[key])
        ),
    )


def image_reference(image: str) -> cm.ImageReference:
    """`publisher:offer:sku:version` (marketplace) or a full resource id (custom image)."""
    if image.startswith("/"):
        return cm.ImageReference(id=image)
    publisher, offer, sku, version = [*image.split(":"), "latest"][:4]
    return cm.ImageReference(publisher=publisher, offer=offer, sku=sku, version=version)


def is_ours(tags: dict[str, str] | None, service: str | None = None) -> bool:
    tags = tags or {}
    if tags.get(TAG_MANAGED_BY) != MANAGED_BY or not {TAG_LAUNCH_TOKEN, TAG_LOCATION} <= set(tags):
        return False
    return service is None or tags.get(TAG_SERVICE) == service


def region_of(tags: dict[str, str] | None) -> str:
    return Location.parse((tags or {}).get(TAG_LOCATION, "azure/?/?")).region


def from_tags(name: str, tags: dict[str, str], reading: Reading, address: str | None) -> Instance:
    """Our view of a replica from its resources' tags (the VM's, or a leftover's)."""
    port = tags.get(TAG_PORT, "")
    location = Location.parse(tags[TAG_LOCATION])
    failure = reading.failure
    return Instance(
        instance_id=name,
        location=location,
        spot=tags.get(TAG_SPOT) == "true",
        state=reading.state,
        service=tags.get(TAG_SERVICE, ""),
        replica_id=int(tags.get(TAG_REPLICA_ID, "0") or 0),
        launch_token=tags.get(TAG_LAUNCH_TOKEN, ""),
        address=address,
        port=int(port) if port.isdigit() else None,
        detail=reading.detail,
        controller_id=tags.get(TAG_CONTROLLER_ID, ""),
        agent_port=recorded_agent_port(tags),
        error=(
            from_failed_provisioning(failure.code, failure.message, location.key)
            if failure
            else None
        ),
    )
