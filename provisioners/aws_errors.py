"""One table from EC2/STS/SSM error codes to the provisioning error vocabulary.

Every boto3/botocore exception an AWS call raises goes through `classify` at the adapter
edge, so no SDK exception leaves `provisioners/`. Codes are the ones AWS documents for EC2
("Error codes for the Amazon EC2 API"); the response body is
`<Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors>..`.
A code not in the table is a `TransientError` when AWS answered 5xx, else an
`InvalidRequest`: an unknown refusal is shown to the operator rather than retried blindly.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    TokenRetrievalError,
)

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
    "configure AWS credentials (`aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY) for an identity allowed to use EC2 (RunInstances, "
    "DescribeInstances, TerminateInstances, CreateTags, security groups) and ssm:GetParameter"
)
QUOTA_HINT = (
    "request a higher EC2 quota in the Service Quotas console (Running On-Demand / All "
    "Spot Instance Requests vCPUs for this instance family) for this region"
)

ERROR_TYPES: dict[str, type[ProvisionError]] = {
    "InsufficientInstanceCapacity": CapacityUnavailable,
    "InsufficientHostCapacity": CapacityUnavailable,
    # Both spellings are real EC2 codes: "InsufficientReservedInstanceCapacity" is listed
    # among the server errors and "InsufficientReservedInstancesCapacity" among the client
    # errors of "Error codes for the Amazon EC2 API".
    "InsufficientReservedInstanceCapacity": CapacityUnavailable,
    "InsufficientReservedInstancesCapacity": CapacityUnavailable,
    "InsufficientCapacity": CapacityUnavailable,
    "InsufficientVolumeCapacity": CapacityUnavailable,
    "InsufficientAddressCapacity": CapacityUnavailable,
    "InsufficientFreeAddressesInSubnet": CapacityUnavailable,
    "Unsupported": CapacityUnavailable,
    "InstanceLimitExceeded": QuotaExceeded,
    "VcpuLimitExceeded": QuotaExceeded,
    "MaxSpotInstanceCountExceeded": QuotaExceeded,
    "SecurityGroupLimitExceeded": QuotaExceeded,
    "RulesPerSecurityGroupLimitExceeded": QuotaExceeded,
    "VolumeLimitExceeded": QuotaExceeded,
    "NetworkInterfaceLimitExceeded": QuotaExceeded,
    "SpotMaxPriceTooLow": SpotUnavailable,
    "AuthFailure": CredentialsError,
    "UnauthorizedOperation": CredentialsError,
    "InvalidClientTokenId": CredentialsError,
    "SignatureDoesNotMatch": CredentialsError,
    "ExpiredToken": CredentialsError,
    "RequestExpired": CredentialsError,
    "AccessDenied": CredentialsError,
    "AccessDeniedException": CredentialsError,
    "UnrecognizedClientException": CredentialsError,
    "OptInRequired": CredentialsError,
    "Blocked": CredentialsError,
    "PendingVerification": CredentialsError,
    "InvalidParameterValue": InvalidRequest,
    "InvalidParameterCombination": InvalidRequest,
    "InvalidParameter": InvalidRequest,
    "MissingParameter": InvalidRequest,
    "InvalidAMIID.NotFound": InvalidRequest,
    "InvalidAMIID.Malformed": InvalidRequest,
    "InvalidAMIID.Unavailable": InvalidRequest,
    "InvalidUserData.Malformed": InvalidRequest,
    "InvalidBlockDeviceMapping": InvalidRequest,
    "InvalidKeyPair.NotFound": InvalidRequest,
    "InvalidGroup.NotFound": InvalidRequest,
    "IdempotentParameterMismatch": InvalidRequest,
    "ParameterNotFound": InvalidRequest,
    "RequestLimitExceeded": TransientError,
    "Throttling": TransientError,
    "ThrottlingException": TransientError,
    "InternalError": TransientError,
    "InternalFailure": TransientError,
    "ServerInternal": TransientError,
    "ServiceUnavailable": TransientError,
    "Unavailable": TransientError,
    "RequestTimeout": TransientError,
}

_HINTS: dict[type[ProvisionError], str] = {
    CredentialsError: CREDENTIALS_HINT,
    QuotaExceeded: QUOTA_HINT,
}


AWS_ERRORS = (ClientError, BotoCoreError)


def aws_calls(location: str | None) -> AbstractContextManager[None]:
    """Every boto3 error raised in the block leaves it as the vocabulary error."""
    return mapped_errors(AWS_ERRORS, _classify_any, location)


def _classify_any(exc: BaseException, location: str | None) -> ProvisionError:
    assert isinstance(exc, AWS_ERRORS)
    return classify(exc, location)


def classify(exc: ClientError | BotoCoreError, location: str | None = None) -> ProvisionError:
    """The vocabulary error for an SDK exception raised by a call made at `location`."""
    if isinstance(exc, ClientError):
        return _from_client_error(exc, location)
    if isinstance(
        exc, NoCredentialsError | PartialCredentialsError | ProfileNotFound | TokenRetrievalError
    ):
        return CredentialsError(f"{exc}; {CREDENTIALS_HINT}", location=location)
    if isinstance(exc, NoRegionError):
        return InvalidRequest(f"{exc}; set AWS_DEFAULT_REGION", location=location)
    if isinstance(exc, ConnectionError | HTTPClientError):
        # Connect failures and read timeouts (ReadTimeoutError is an HTTPClientError): the
        # same call may succeed on a later tick.
        return TransientError(
            f"could not reach AWS ({exc}); check the network and AWS_ENDPOINT_URL",
            location=location,
        )
    return InvalidRequest(str(exc), location=location)


def error_code(exc: Exception) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _from_client_error(exc: ClientError, location: str | None) -> ProvisionError:
    code = error_code(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    kind = ERROR_TYPES.get(code) or kind_for_status(status)
    return kind(with_hint(message, _HINTS.get(kind)), location=location, code=code or None)
