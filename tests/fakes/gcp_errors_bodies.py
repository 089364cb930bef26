"""Compute Engine error bodies in the shapes the real API returns them.

Two families: errors inside a finished zone operation (`error.errors[]` with `code`,
`message` and `errorDetails`, plus `httpErrorStatusCode`), and errors returned as the HTTP
answer itself (`{"error": {"code": <http>, "message", "errors": [{"reason"...}], "status"}}`).
Shapes follow operations and `gcloud` output quoted in public bug reports.
"""

from __future__ import annotations

from typing import Any


def zone_exhausted(project: str, zone: str) -> dict[str, Any]:
    return {
        "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
        "message": f"The zone 'projects/{project}/zones/{zone}' does not have enough resources "
        "available to fulfill the request.  Try a different zone, or try again later.",
        "errorDetails": [
            {
                "help": {
                    "links": [
                        {
                            "description": "Troubleshooting documentation",
                            "url": "https://cloud.google.com/compute/docs/resource-error",
                        }
                    ]
                }
            },
        ],
    }


def zone_exhausted_with_details(project: str, zone: str) -> dict[str, Any]:
    return {
        "code": "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        "message": f"The zone 'projects/{project}/zones/{zone}' does not have enough resources "
        "available to fulfill the request.  '(resource type:compute)'.",
        "errorDetails": [
            {
                "localizedMessage": {
                    "locale": "en-US",
                    "message": f"A g2-standard-4 VM instance is currently unavailable "
                    f"in the {zone} zone.",
                }
            },
            {
                "errorInfo": {
                    "domain": "compute.googleapis.com",
                    "reason": "resource_availability",
                    "metadatas": {"vmType": "g2-standard-4", "zone": zone},
                }
            },
        ],
    }


def quota_exceeded(region: str) -> dict[str, Any]:
    return {
        "code": "QUOTA_EXCEEDED",
        "message": f"Quota 'NVIDIA_L4_GPUS' exceeded.  Limit: 0.0 in region {region}.",
        "errorDetails": [
            {
                "quotaInfo": {
                    "metricName": "compute.googleapis.com/nvidia_l4_gpus",
                    "limitName": "NVIDIA-L4-GPUS-per-project-region",
                    "dimensions": {"region": region},
                    "limit": 0,
                }
            },
        ],
    }


OPERATION_HTTP_STATUS = {
    "ZONE_RESOURCE_POOL_EXHAUSTED": (503, "SERVICE UNAVAILABLE"),
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": (503, "SERVICE UNAVAILABLE"),
    "QUOTA_EXCEEDED": (403, "FORBIDDEN"),
}


def http_error(
    status: int, message: str, reason: str, rpc_status: str | None = None, domain: str = "global"
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}],
    }
    if rpc_status:
        error["status"] = rpc_status
    return {"error": error}


UNAUTHENTICATED = http_error(
    401,
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential.",
    "authError",
    "UNAUTHENTICATED",
)
PERMISSION_DENIED = http_error(
    403, "Required 'compute.instances.create' permission for 'projects/test-project'", "forbidden"
)
QUOTA_EXCEEDED_HTTP = http_error(
    403,
    "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally.",
    "quotaExceeded",
    domain="usageLimits",
)
INVALID_ARGUMENT = http_error(
    400,
    "Invalid value for field 'resource.machineType': 'zones/us-central1-a/machineTypes/nope'. "
    "Machine type with name 'nope' does not exist in zone 'us-central1-a'.",
    "invalid",
    "INVALID_ARGUMENT",
)
RATE_LIMITED = http_error(
    429, "Rate Limit Exceeded", "rateLimitExceeded", "RESOURCE_EXHAUSTED", domain="usageLimits"
)
BACKEND_ERROR = http_error(503, "Internal error. Please try again.", "backendError", "UNAVAILABLE")


def not_found(what: str) -> dict[str, Any]:
    return http_error(404, f"The resource '{what}' was not found", "notFound")


def not_ready(what: str) -> dict[str, Any]:
    """What a change to a resource still being created answers (reason as seen in public
    bug reports of deletes right after an insert)."""
    return http_error(400, f"The resource '{what}' is not ready", "resourceNotReady")


def already_exists(what: str) -> dict[str, Any]:
    return http_error(409, f"The resource '{what}' already exists", "alreadyExists")
