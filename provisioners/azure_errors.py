"""Azure Resource Manager error codes mapped onto our error vocabulary: one table.

ARM reports a failure either as the HTTP answer to the PUT (`{"error": {"code":
"SkuNotAvailable", ...}}`, e.g. 409) or as the final status of the long-running operation
the PUT started (`{"status": "Failed", "error": {"code": "AllocationFailed", ...}}`).
azure-core raises `HttpResponseError` for both and parses the body into `.error.code`, which
is what this module reads. A VM whose creation failed after its PUT was accepted also says so
in its instance view (`ProvisioningState/failed/<code>` with the message), which
`from_failed_provisioning` maps through the same table, so `get` reports the very error
`launch` would have raised.

ARM uses `OperationNotAllowed` both for quota refusals ("...results in exceeding approved
... Cores quota") and for spot price refusals ("...max price ... is lower than the current
spot price"), so that one code is refined by a phrase of its message, as Azure's own Go SDK
extensions do.

Invariant: no azure exception leaves the adapter; every failure becomes a `ProvisionError`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from azure.core import exceptions as aexc

from provisioners.errors import (
    CapacityUnavailable,
    CredentialsError,
    InvalidRequest,
    ProvisionError,
    QuotaExceeded,
    SpotUnavailable,
    TransientError,
    kind_for_status,
    mapped_errors,
    with_hint,
)

CREDENTIALS_HINT = (
    "run `az login` (or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a "
    "service principal with the Contributor role on the resource group) and set "
    "AZURE_SUBSCRIPTION_ID"
)

ERROR_TABLE: dict[str, type[ProvisionError]] = {
    "SkuNotAvailable": CapacityUnavailable,
    "AllocationFailed": CapacityUnavailable,
    "ZonalAllocationFailed": CapacityUnavailable,
    "OverconstrainedAllocationRequest": CapacityUnavailable,
    "OverconstrainedZonalAllocationRequest": CapacityUnavailable,
    "AllocationTimedOut": CapacityUnavailable,
    "QuotaExceeded": QuotaExceeded,
    "OperationNotAllowed": InvalidRequest,
    "SpotPriceGreaterThanProvidedMaxPrice": SpotUnavailable,
    "AzureSpotIsNotSupportedForThisVMSize": SpotUnavailable,
    "AzureSpotFeatureNotEnabledForSubscription": SpotUnavailable,
    "AuthenticationFailed": CredentialsError,
    "InvalidAuthenticationToken": CredentialsError,
    "InvalidAuthenticationTokenTenant": CredentialsError,
    "ExpiredAuthenticationToken": CredentialsError,
    "AuthorizationFailed": CredentialsError,
    "SubscriptionNotFound": CredentialsError,
    "InvalidParameter": InvalidRequest,
    "InvalidRequestContent": InvalidRequest,
    "InvalidResourceReference": InvalidRequest,
    "ResourceGroupNotFound": InvalidRequest,
    "BadRequest": InvalidRequest,
    # The NIC of a VM just deleted or refused is held 180 s ("Nic(s) in request is reserved for
    # another Virtual Machine for 180 seconds ... retry after 180 seconds"): retry later.
    "NicReservedForAnotherVm": TransientError,
    "TooManyRequests": TransientError,
    "RetryableError": TransientError,
    "InternalServerError": TransientError,
    "InternalExecutionError": TransientError,
}

OPERATION_NOT_ALLOWED_PHRASES: tuple[tuple[str, type[ProvisionError]], ...] = (
    ("quota", QuotaExceeded),
    ("spot price", SpotUnavailable),
)

DELETE_NOT_YET: frozenset[str] = frozenset(
    {
        "NicReservedForAnotherVm",
        "NicInUse",
        "PublicIPAddressCannotBeDeleted",
        "InUseNetworkSecurityGroupCannotBeDeleted",
    }
)
"""Codes ARM answers a DELETE with while something that uses the resource is still going
away (the VM holding a NIC, the NIC holding an IP or NSG): not an error for `terminate`, just
"not yet"."""

_HINTS = {
    "ResourceGroupNotFound": "create it with `az group create -n <group> -l <region>` or set "
    "SERVE_AZURE_RESOURCE_GROUP to an existing group",
}


def azure_calls(where: str | None) -> AbstractContextManager[None]:
    """Every azure-mgmt (or credential) error raised in the block leaves it as our type."""
    return mapped_errors((aexc.AzureError,), from_azure_error, where)


def from_azure_error(exc: BaseException, where: str | None) -> ProvisionError:
    """An exception raised by an azure-mgmt call (or by the credential), as our type."""
    if isinstance(exc, aexc.ClientAuthenticationError) and exc.response is None:
        return CredentialsError(f"{exc.message}; {CREDENTIALS_HINT}", location=where, code="auth")
    if not isinstance(exc, aexc.HttpResponseError):
        return TransientError(f"cannot reach Azure Resource Manager: {exc}", location=where)
    code, message = _code_and_message(exc)
    return _typed(code, message, int(exc.status_code or 0), where)


def from_failed_provisioning(code: str, message: str, where: str | None) -> ProvisionError:
    """A VM's `ProvisioningState/failed/<code>` instance-view status, as our type."""
    return _typed(code, message, 0, where)


def error_code(exc: aexc.AzureError) -> str:
    """The most specific known code of an ARM error answer ('' if it has none)."""
    if not isinstance(exc, aexc.HttpResponseError):
        return ""
    return _code_and_message(exc)[0]


def _typed(code: str, message: str, status: int, where: str | None) -> ProvisionError:
    """One rule for codes: the table (refined by phrase), else the HTTP status, else
    InvalidRequest (an unknown refusal is shown to the operator, not retried blindly)."""
    kind = ERROR_TABLE.get(code)
    if code == "OperationNotAllowed":
        kind = next((k for p, k in OPERATION_NOT_ALLOWED_PHRASES if p in message.lower()), kind)
    if kind is None:
        kind = kind_for_status(status)
        code = code or str(status)
    hint = CREDENTIALS_HINT if kind is CredentialsError else _HINTS.get(code)
    return kind(with_hint(message, hint), location=where, code=code)


def _code_and_message(exc: aexc.HttpResponseError) -> tuple[str, str]:
    """The most specific known code: the top-level one, else the first known detail code."""
    error = exc.error
    if error is None:
        return "", str(exc.message or exc.reason or "request failed")
    candidates = [error, *(getattr(error, "details", None) or [])]
    for item in candidates:
        if item.code in ERROR_TABLE:
            return str(item.code), str(item.message)
    return str(error.code or ""), str(error.message or "")
