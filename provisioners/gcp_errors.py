"""GCP error codes mapped onto our error vocabulary: one table, one lookup.

Compute Engine reports a failure in one of two places, and both are read here:

- the HTTP answer to the call itself (google-api-core raises a `GoogleAPICallError` whose
  `errors` carry a `reason` such as `quotaExceeded`, and whose body may carry a `status`
  such as `INVALID_ARGUMENT`);
- the zone operation the call started, which ends `DONE` with `error.errors[].code` such
  as `ZONE_RESOURCE_POOL_EXHAUSTED` (capacity) or `QUOTA_EXCEEDED`.

Invariant: no google exception leaves this module's callers; every failure becomes a
`ProvisionError` subclass whose type says whether to try elsewhere, retry later or stop.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from provisioners.errors import (
    CapacityUnavailable,
    CredentialsError,
    InvalidRequest,
    ProvisionError,
    QuotaExceeded,
    TransientError,
    kind_for_status,
    mapped_errors,
    with_hint,
)

CREDENTIALS_HINT = (
    "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key with the Compute Admin role) and set GOOGLE_CLOUD_PROJECT"
)

ERROR_TABLE: dict[str, type[ProvisionError]] = {
    # zone operation error codes
    "ZONE_RESOURCE_POOL_EXHAUSTED": CapacityUnavailable,
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": CapacityUnavailable,
    "RESOURCE_POOL_EXHAUSTED": CapacityUnavailable,
    "QUOTA_EXCEEDED": QuotaExceeded,
    "RESOURCE_OPERATION_RATE_EXCEEDED": TransientError,
    "RATE_LIMIT_EXCEEDED": TransientError,
    "UNSUPPORTED_OPERATION": InvalidRequest,
    "RESOURCE_NOT_FOUND": InvalidRequest,
    "INVALID_FIELD_VALUE": InvalidRequest,
    "PERMISSIONS_ERROR": CredentialsError,
    # HTTP `errors[].reason` values
    "quotaExceeded": QuotaExceeded,
    "rateLimitExceeded": TransientError,
    "userRateLimitExceeded": TransientError,
    "backendError": TransientError,
    "authError": CredentialsError,
    "required": CredentialsError,
    "forbidden": CredentialsError,
    "accessNotConfigured": CredentialsError,
    "invalid": InvalidRequest,
    "badRequest": InvalidRequest,
    "notFound": InvalidRequest,
    "resourceNotReady": TransientError,
    # HTTP body `status` values (google.rpc.Code names)
    "RESOURCE_EXHAUSTED": QuotaExceeded,
    "UNAUTHENTICATED": CredentialsError,
    "PERMISSION_DENIED": CredentialsError,
    "INVALID_ARGUMENT": InvalidRequest,
    "FAILED_PRECONDITION": InvalidRequest,
    "NOT_FOUND": InvalidRequest,
    "UNAVAILABLE": TransientError,
    "INTERNAL": TransientError,
}

SDK_ERRORS = (gexc.GoogleAPICallError, auth_exc.GoogleAuthError, requests.RequestException)
"""What a google-cloud-compute call can raise; `from_api_error` maps each of them."""


def gcp_calls(where: str | None) -> AbstractContextManager[None]:
    """Every google-cloud-compute error raised in the block leaves it as our type."""
    return mapped_errors(SDK_ERRORS, from_api_error, where)


def from_operation_error(errors: list[dict[str, Any]], where: str) -> ProvisionError:
    """The error of a zone/global operation that ended DONE with `error.errors`."""
    for item in errors:
        kind = ERROR_TABLE.get(str(item.get("code", "")))
        if kind is not None:
            return _build(kind, str(item.get("message", "")), where, str(item["code"]))
    first = errors[0] if errors else {}
    code = str(first.get("code", "UNKNOWN"))
    return InvalidRequest(str(first.get("message", "operation failed")), location=where, code=code)


def from_api_error(exc: BaseException, where: str | None) -> ProvisionError:
    """An exception raised by a google-cloud-compute call, as our type."""
    if isinstance(exc, auth_exc.GoogleAuthError):
        return CredentialsError(f"{exc}; {CREDENTIALS_HINT}", location=where, code="auth")
    if not isinstance(exc, gexc.GoogleAPICallError):
        return TransientError(f"cannot reach the Compute API: {exc}", location=where)
    for code in _codes(exc):
        kind = ERROR_TABLE.get(code)
        if kind is not None:
            return _build(kind, exc.message, where, code)
    status = int(exc.code or 0)
    return _build(kind_for_status(status), exc.message, where, str(status))


def _codes(exc: gexc.GoogleAPICallError) -> list[str]:
    codes = [str(e.get("reason", "")) for e in exc.errors if isinstance(e, dict)]
    if exc.reason:
        codes.append(str(exc.reason))
    response = getattr(exc, "response", None)
    with contextlib.suppress(AttributeError, KeyError, TypeError, ValueError):
        codes.append(str(response.json()["error"]["status"]))  # type: ignore[union-attr]
    return [c for c in codes if c]


def _build(
    kind: type[ProvisionError], message: str, where: str | None, code: str
) -> ProvisionError:
    hint = CREDENTIALS_HINT if kind is CredentialsError else None
    return kind(with_hint(message, hint), location=where, code=code)
