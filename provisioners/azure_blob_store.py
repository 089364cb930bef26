"""The Azure bundle store: a Blob container per installation, SAS URLs for the replicas.

The container lives in the storage account `SERVE_AZURE_STORAGE_ACCOUNT` (the account is
the operator's: its region, redundancy and network rules are theirs to choose). Credentials,
first found wins:
- `AZURE_STORAGE_CONNECTION_STRING` with an `AccountKey` (or `UseDevelopmentStorage=true`,
  Azurite's development account on its default port): requests and SAS signed with the key;
- `AZURE_STORAGE_KEY` (the account key, as the Azure CLI names it): the same;
- otherwise Entra ID (`az login`, a service principal, a managed identity, through
  azure-identity's DefaultAzureCredential): SAS signed with a user delegation key, which needs
  the role Storage Blob Data Contributor on the account (it carries
  `generateUserDelegationKey`). A connection string holding only a `BlobEndpoint` names the
  endpoint for this mode.

Container names follow the common bucket rules (`object_store.bucket_name`). The ownership
tags go in as container metadata, whose names must be C# identifiers ("Naming and
Referencing Containers, Blobs, and Metadata"): `serve-managed-by` is written
`serve_managed_by`, and Azure (as Azurite) answers a hyphen with `InvalidMetadata`. The
container never gets public access; one found with it is set back to private.

Like the other stores, a failed call is retried twice, a second apart (the SDK's default
waits 15 s and more), then is a `TransientError` for a later tick.

A SAS is signed for HTTPS only unless the endpoint is plain http (an emulator). A user
delegation key lives at most 7 days; one is kept and reused while it outlives the URL asked.

Errors: one table of Blob Storage error codes ("Blob Storage error codes" and "Common REST
API error codes"), the HTTP status deciding for codes not in it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from azure.core import exceptions as aexc
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
    LinearRetry,
    UserDelegationKey,
    generate_blob_sas,
)

from provisioners.base import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, Bundle
from provisioners.errors import (
    CredentialsError,
    InvalidRequest,
    ProvisionError,
    TransientError,
    kind_for_status,
    mapped_methods,
)
from provisioners.object_store import (
    BUNDLE_CONTENT_TYPE,
    MAX_URL_SECONDS,
    SignedObject,
    bucket_name,
    bundle_key,
    checked_seconds,
    directory_prefix,
    no_bucket,
    nothing_at,
    ownership_tags,
    service_prefix,
)

CREDENTIALS_HINT = (
    "set SERVE_AZURE_STORAGE_ACCOUNT and either AZURE_STORAGE_KEY (or "
    "AZURE_STORAGE_CONNECTION_STRING) or Entra ID credentials (`az login`) with the role "
    "Storage Blob Data Contributor on that account"
)

ERROR_TABLE: dict[str, type[ProvisionError]] = {
    "AuthenticationFailed": CredentialsError,
    "AuthorizationFailure": CredentialsError,
    "AuthorizationPermissionMismatch": CredentialsError,
    "AuthorizationProtocolMismatch": CredentialsError,
    "AuthorizationResourceTypeMismatch": CredentialsError,
    "AuthorizationServiceMismatch": CredentialsError,
    "AuthorizationSourceIPMismatch": CredentialsError,
    "InsufficientAccountPermissions": CredentialsError,
    "InvalidAuthenticationInfo": CredentialsError,
    "KeyBasedAuthenticationNotPermitted": CredentialsError,
    "AccountIsDisabled": CredentialsError,
    "InvalidResourceName": InvalidRequest,
    "InvalidMetadata": InvalidRequest,
    "OutOfRangeInput": InvalidRequest,
    "ContainerNotFound": InvalidRequest,
    "ResourceNotFound": InvalidRequest,
    "RequestBodyTooLarge": InvalidRequest,
    "AccountBeingCreated": TransientError,
    "ContainerBeingDeleted": TransientError,
    "ServerBusy": TransientError,
    "InternalError": TransientError,
    "OperationTimedOut": TransientError,
}

_HINTS = {
    "KeyBasedAuthenticationNotPermitted": "the account refuses its keys: unset "
    "AZURE_STORAGE_KEY/AZURE_STORAGE_CONNECTION_STRING to sign in with Entra ID",
    "ResourceNotFound": "check SERVE_AZURE_STORAGE_ACCOUNT",
}

NO_STORAGE_ACCOUNT = "no-account"
"""The error code when no storage account is configured at all (nothing can be stored)."""
SDK_ERRORS = (aexc.AzureError,)
_METADATA = {k.replace("-", "_"): v for k, v in ownership_tags("").items()}
_CONTROLLER_KEY = next(k for k, v in _METADATA.items() if not v)
_BLOCK = 8 * 1024 * 1024
_KEY_MARGIN = datetime.timedelta(minutes=5)


def classify(exc: BaseException) -> ProvisionError:
    """The vocabulary error for anything azure-storage-blob raised; the one mapping."""
    if isinstance(exc, aexc.ClientAuthenticationError) and exc.response is None:
        return CredentialsError(f"{exc.message}; {CREDENTIALS_HINT}", code="auth")
    if not isinstance(exc, aexc.HttpResponseError) or exc.response is None:
        return TransientError(f"could not reach Blob Storage: {exc}")
    code = _code(exc)
    status = int(exc.status_code or 0)
    kind = ERROR_TABLE.get(code) or kind_for_status(status)
    message = str(exc.message or exc.reason or "request failed").splitlines()[0]
    if kind is CredentialsError:
        message = f"{message}; {CREDENTIALS_HINT}"
    if code in _HINTS:
        message = f"{message}; {_HINTS[code]}"
    return kind(message, code=code or str(status))


_mapped = mapped_methods(SDK_ERRORS, classify)


class AzureBlobStore:
    """The `ObjectStore` for Azure. Constructor does no I/O; the client is made on first use."""

    cloud = "azure"

    def __init__(
        self,
        installation_id: str,
        *,
        env: Mapping[str, str] | None = None,
        credential: Any = None,
    ) -> None:
        env = os.environ if env is None else env
        self.installation_id = installation_id
        self.container = bucket_name(installation_id)
        self._connection = _parse_connection_string(env.get("AZURE_STORAGE_CONNECTION_STRING"))
        self.account = self._connection.get("AccountName") or env.get("SERVE_AZURE_STORAGE_ACCOUNT")
        self._key = self._connection.get("AccountKey") or env.get("AZURE_STORAGE_KEY") or None
        self._credential = credential
        self._service: BlobServiceClient | None = None
        self._delegation: UserDelegationKey | None = None
        self._delegation_ends: datetime.datetime | None = None
        self._ensured = False
        self._lock = threading.Lock()

    @_mapped
    def ensure_bucket(self) -> str:
        if self._ensured:
            return self.container
        container = self._containers()
        metadata = {**_METADATA, _CONTROLLER_KEY: self.installation_id}
        try:
            container.create_container(metadata=metadata)
        except aexc.ResourceExistsError:
            self._repair(container, metadata)
        self._ensured = True
        return self.container

    @_mapped
    def put_bundle(self, service: str, bundle: Bundle) -> str:
        key = bundle_key(service, bundle)
        self.ensure_bucket()
        blob = self._containers().get_blob_client(key)
        try:
            if blob.get_blob_properties().size == bundle.size:
                return key
            replace = True
        except aexc.ResourceNotFoundError:
            replace = False
        # A racing writer of the same content-addressed key may have won: same bytes.
        with bundle.path.open("rb") as data, contextlib.suppress(aexc.ResourceExistsError):
            blob.upload_blob(
                data,
                length=bundle.size,
                overwrite=replace,
                max_concurrency=4,
                content_settings=ContentSettings(content_type=BUNDLE_CONTENT_TYPE),
            )
        return key

    @_mapped
    def signed_url(self, key: str, seconds: int) -> str:
        return self._sign(self.container, key, seconds)

    @_mapped
    def delete_service(self, service: str) -> bool:
        prefix = service_prefix(service)
        container = self._containers()
        try:
            for name in list(container.list_blob_names(name_starts_with=prefix)):
                with contextlib.suppress(aexc.ResourceNotFoundError):  # gone already
                    container.delete_blob(name, delete_snapshots="include")
            left = next(iter(container.list_blob_names(name_starts_with=prefix)), None)
        except aexc.ResourceNotFoundError:
            return True  # no container, no blobs
        return left is None

    @_mapped
    def sign_source(self, source: str, seconds: int) -> list[SignedObject] | None:
        service = self._connect()
        base = service.url.rstrip("/") + "/"
        if not source.startswith(base) or "?" in source:
            return None  # another account, another cloud, or a URL that carries its own SAS
        name, _, path = urllib.parse.unquote(source[len(base) :]).partition("/")
        container = service.get_container_client(name)
        try:
            if path and not path.endswith("/"):
                try:
                    container.get_blob_client(path).get_blob_properties()
                    return [SignedObject(self._sign(name, path, seconds), "")]
                except aexc.ResourceNotFoundError as exc:
                    if _code(exc) == "ContainerNotFound":
                        raise
            prefix = directory_prefix(path)
            names = [n for n in container.list_blob_names(name_starts_with=prefix or None)]
        except aexc.ResourceNotFoundError as exc:
            raise no_bucket(source, name) from exc
        except aexc.HttpResponseError as exc:
            if exc.status_code == 403:
                return None
            raise
        found = [
            SignedObject(self._sign(name, n, seconds), n[len(prefix) :])
            for n in names
            if not n.endswith("/")
        ]
        if not found:
            raise nothing_at(source)
        return found

    def _repair(self, container: ContainerClient, metadata: dict[str, str]) -> None:
        """Put back ownership metadata or privacy someone took off an existing container."""
        props = container.get_container_properties()
        have = dict(props.metadata or {})
        if {**have, **metadata} != have:
            container.set_container_metadata({**have, **metadata})
        if props.public_access is not None:
            policy = container.get_container_access_policy()
            container.set_container_access_policy(
                signed_identifiers={i.id: i.access_policy for i in policy["signed_identifiers"]},
                public_access=None,
            )

    def _sign(self, container: str, blob: str, seconds: int) -> str:
        seconds = checked_seconds(seconds)
        service = self._connect()
        expiry = _now() + datetime.timedelta(seconds=seconds)
        signing: dict[str, Any] = (
            {"account_key": self._key}
            if self._key
            else {"user_delegation_key": self._delegation_key(seconds)}
        )
        sas = generate_blob_sas(
            account_name=service.account_name or "",
            container_name=container,
            blob_name=blob,
            permission=BlobSasPermissions(read=True),
            expiry=expiry,
            protocol=None if service.url.startswith("http://") else "https",
            **signing,
        )
        return f"{service.get_blob_client(container, blob).url}?{sas}"

    def _delegation_key(self, seconds: int) -> UserDelegationKey:
        """A key that outlives a URL of `seconds`: the kept one, or a new one for a day (or
        the URL's life, if longer)."""
        needed = _now() + datetime.timedelta(seconds=seconds) + _KEY_MARGIN
        service = self._connect()
        with self._lock:
            ends = self._delegation_ends
            if self._delegation is None or ends is None or ends < needed:
                life = min(max(seconds, 24 * 3600) + 600, MAX_URL_SECONDS)
                start = _now() - _KEY_MARGIN  # the service's clock may be behind ours
                ends = _now() + datetime.timedelta(seconds=life)
                self._delegation = service.get_user_delegation_key(start, ends)
                self._delegation_ends = ends
            return self._delegation

    def _containers(self) -> ContainerClient:
        return self._connect().get_container_client(self.container)

    def _connect(self) -> BlobServiceClient:
        with self._lock:
            if self._service is None:
                self._service = self._new_service()
            return self._service

    def _new_service(self) -> BlobServiceClient:
        options: dict[str, Any] = {
            "connection_timeout": CONNECT_TIMEOUT_SECONDS,
            "read_timeout": READ_TIMEOUT_SECONDS,
            "retry_policy": LinearRetry(backoff=1, retry_total=2, random_jitter_range=0),
            "max_block_size": _BLOCK,
            "max_single_put_size": _BLOCK,
        }
        if not self.account and (self._key or "BlobEndpoint" not in self._connection):
            raise CredentialsError(
                f"no storage account is set; {CREDENTIALS_HINT}", code=NO_STORAGE_ACCOUNT
            )
        credential: Any = (
            {"account_name": self.account, "account_key": self._key}
            if self._key
            else self._credential or _default_credential()
        )
        endpoint = self._connection.get("BlobEndpoint") or (
            f"https://{self.account}.blob.core.windows.net"
        )
        try:
            return BlobServiceClient(endpoint, credential=credential, **options)
        except ValueError as exc:  # the SDK's word for an endpoint or key it cannot use
            raise InvalidRequest(f"{exc}; {CREDENTIALS_HINT}", code="configuration") from exc


def _code(exc: aexc.AzureError) -> str:
    """The storage error code (`x-ms-error-code`), which the SDK gives as an enum member."""
    code = getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))


DEVELOPMENT_STORAGE = {
    "AccountName": "devstoreaccount1",
    "AccountKey": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq"
    "/K1SZFPTOtr/KBHBeksoGMGw==",
    "BlobEndpoint": "http://127.0.0.1:10000/devstoreaccount1",
}
"""What `UseDevelopmentStorage=true` stands for: Azurite's documented account, key and port."""


def _parse_connection_string(text: str | None) -> dict[str, str]:
    """`Key=Value;...` as a dict (values may hold `=`, as base64 keys do)."""
    pairs = (part.split("=", 1) for part in (text or "").split(";") if "=" in part)
    found = {k.strip(): v.strip() for k, v in pairs}
    if found.get("UseDevelopmentStorage", "").lower() == "true":
        return {**DEVELOPMENT_STORAGE, **found}
    return found


def _default_credential() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
