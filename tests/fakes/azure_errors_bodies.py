"""Azure Resource Manager error bodies in the shapes ARM returns them.

Synchronous refusals answer the PUT with `{"error": {"code", "message"}}` (SkuNotAvailable
and quota refusals come back as 409); allocation failures arrive later, as the failed status
of the long-running operation and in the VM's instance view. Messages follow Azure's
documentation and public reports, cited beside each.
"""

from __future__ import annotations

from typing import Any


def arm_error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def sku_not_available(size: str, region: str) -> dict[str, Any]:
    return arm_error(
        "SkuNotAvailable",
        f"The requested VM size for resource 'Following SKUs have failed for Capacity "
        f"Restrictions: {size}' is currently not available in location '{region}'. Please try "
        "another size or deploy to a different location or different zone. See "
        "https://aka.ms/azureskunotavailable for details.",
    )


def quota_exceeded(region: str, spot: bool) -> dict[str, Any]:
    family = "LowPriorityCores" if spot else "standardNCASv3_T4Family Cores"
    return arm_error(
        "OperationNotAllowed",
        f"Operation could not be completed as it results in exceeding approved {family} quota. "
        f"Additional details - Deployment Model: Resource Manager, Location: {region}, Current "
        "Limit: 0, Current Usage: 0, Additional Required: 4, (Minimum) New Limit Required: 4. "
        "Submit a request for Quota increase at https://aka.ms/ProdCoresQuotaIncrease.",
    )


def spot_price_too_low(size: str) -> dict[str, Any]:
    return arm_error(
        "OperationNotAllowed",
        "Unable to perform operation 'Create Virtual Machine' since the provided max price "
        f"'0.01 USD' is lower than the current spot price '0.0526 USD' for Azure Spot VM size "
        f"'{size}'. For more information, see http://aka.ms/AzureSpot/errormessages.",
    )


ALLOCATION_FAILED = {
    "code": "AllocationFailed",
    "message": "Allocation failed. We do not have sufficient capacity for the requested VM size "
    "in this region. Read more about improving likelihood of allocation success at "
    "http://aka.ms/allocation-guidance",
}
ZONAL_ALLOCATION_FAILED = {
    "code": "ZonalAllocationFailed",
    "message": "Allocation failed. We do not have sufficient capacity for the requested VM size "
    "in this zone. Read more about improving likelihood of allocation success at "
    "http://aka.ms/allocation-guidance",
}
AUTHENTICATION_FAILED = arm_error(
    "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
)
INVALID_TOKEN = arm_error("InvalidAuthenticationToken", "The access token is invalid.")
AUTHORIZATION_FAILED = arm_error(
    "AuthorizationFailed",
    "The client 'spotserve' with object id '00000000-0000-0000-0000-000000000000' does not have "
    "authorization to perform action 'Microsoft.Compute/virtualMachines/write' over scope "
    "'/subscriptions/sub/resourceGroups/spotserve'.",
)
INVALID_PARAMETER = arm_error(
    "InvalidParameter",
    "The value of parameter imageReference.sku is invalid.",
    target="imageReference.sku",
)
TOO_MANY_REQUESTS = arm_error(
    "TooManyRequests", "The request is being throttled as the limit has been reached."
)


def not_found(kind: str, name: str, group: str) -> dict[str, Any]:
    return arm_error(
        "ResourceNotFound",
        f"The Resource '{kind}/{name}' under resource group '{group}' was not found.",
    )


def group_not_found(group: str) -> dict[str, Any]:
    return arm_error("ResourceGroupNotFound", f"Resource group '{group}' could not be found.")


# ---- refusals the fake applies on its own (reference rules), with ARM's wording -------------

LIST_EXPAND_WITHOUT_FILTER = arm_error(
    # "Virtual Machines - List" / "List All" (REST reference): `$expand=instanceView` "can only be
    # specified if a valid $filter option is specified"; ARM answers 400 with this body (reported
    # in Azure/azure-rest-api-specs#42411 and by clients that hit it, e.g. semicons/java_oci_manage#46).
    "BadRequest",
    "Expand Instance View is only supported when Virtual Machine Scale Set resource filter is "
    "applied",
)
CUSTOM_DATA_INVALID = arm_error(
    # OSProfile.customData (REST reference): base64, decoding to at most 65,535 bytes, so at most
    # 87,380 base64 characters. ARM's 400 for either fault, as reported in Azure/aks-engine#1663.
    "InvalidParameter",
    "Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 "
    "characters.",
    target="customData",
)


def nic_reserved(vm_id: str) -> dict[str, Any]:
    """The 400 a NIC delete (or attach) gets for 180 s after its VM was deleted or refused; the
    wording as reported in Azure/karpenter-provider-azure#92, microsoft/AzureTRE#4474 and
    cloudfoundry/bosh-azure-cpi-release#366 (the 180 s is Azure's, whatever the fake's timer)."""
    return arm_error(
        "NicReservedForAnotherVm",
        "Nic(s) in request is reserved for another Virtual Machine for 180 seconds. Please "
        f"provide another nic(s) or retry after 180 seconds. Reserved VM: {vm_id}",
        details=[],
    )


def nic_in_use(nic_id: str, vm_id: str) -> dict[str, Any]:
    return arm_error(
        "NicInUse",
        f"Network Interface {nic_id} is used by existing resource {vm_id}. In order to delete "
        "the network interface, it must be dissociated from the resource. To learn more, see "
        "aka.ms/deletenic.",
        details=[],
    )


def public_ip_in_use(ip_id: str, ip_config_id: str) -> dict[str, Any]:
    return arm_error(
        "PublicIPAddressCannotBeDeleted",
        f"Public IP address {ip_id} can not be deleted since it is still allocated to resource "
        f"{ip_config_id}. In order to delete the public IP, disassociate/detach the Public IP "
        "address from the resource.  To learn how to do this, see aka.ms/deletepublicip.",
        details=[],
    )


def nsg_in_use(nsg_id: str, user_ids: list[str]) -> dict[str, Any]:
    return arm_error(
        "InUseNetworkSecurityGroupCannotBeDeleted",
        f"Network security group {nsg_id} cannot be deleted because it is in use by the "
        f"following resources: {', '.join(user_ids)}. In order to delete the Network security "
        "group, remove the association with the resource(s). To learn how to do this, see "
        "aka.ms/deletensg.",
        details=[],
    )


def provisioning_failed_status(failure: dict[str, Any]) -> dict[str, Any]:
    """How a VM whose creation failed shows it in its instance view ("States and billing status
    of Azure Virtual Machines": `ProvisioningState/failed/<code>`, level Error)."""
    return {
        "code": f"ProvisioningState/failed/{failure['code']}",
        "level": "Error",
        "displayStatus": "Provisioning failed",
        "message": failure["message"],
    }


def security_rule_conflict(rule: str, other: str) -> dict[str, Any]:
    """Two rules of one NSG with the same priority and direction (reported as such by
    grycap/im#359, hashicorp/terraform-provider-azurerm#11137)."""
    return arm_error(
        "SecurityRuleConflict",
        f"Security rule {rule} conflicts with rule {other}. Rules cannot have the same "
        "Priority and Direction. To learn more, see aka.ms/nsgrules.",
    )


def security_rule_invalid_priority(rule: str, priority: object) -> dict[str, Any]:
    """ "Network security groups", Security rules: priority "between 100 and 4096"."""
    return arm_error(
        "SecurityRuleInvalidPriority",
        f"Security rule {rule} has invalid Priority. Value provided: {priority}. "
        "Allowed values: 100-4096.",
    )


def imds_no_api_version(versions: tuple[str, ...]) -> dict[str, Any]:
    """Instance Metadata Service without (or with an unknown) api-version ("Azure Instance
    Metadata Service", Versions: the error lists the newest versions)."""
    return {
        "error": "Bad request. api-version was not specified in the request. For more "
        "information refer to aka.ms/azureimds",
        "newest-versions": list(reversed(versions))[:3],
    }


def imds_bad_api_version(versions: tuple[str, ...]) -> dict[str, Any]:
    return {
        "error": "Bad request. api-version is invalid or was not specified in the request. "
        "For more information refer to aka.ms/azureimds",
        "newest-versions": list(reversed(versions))[:3],
    }
