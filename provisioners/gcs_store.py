"""The GCP bundle store: a GCS bucket per installation, V4 signed URLs for the replicas.

The bucket is made in `GOOGLE_CLOUD_PROJECT` at `SERVE_GCP_BUNDLE_LOCATION` (default US),
labelled with the ownership tags, with uniform bucket-level access and public access
prevention enforced. A bucket found without them (made by hand, or changed since) is patched
back: only what differs is sent. `STORAGE_EMULATOR_HOST` points every call at an emulator
(which, as google-cloud-storage does, gets no credentials).

Signing a URL needs credentials that can sign, one of:
- a service-account key (`GOOGLE_APPLICATION_CREDENTIALS`): signed here, no call made;
- credentials impersonating a service account (`gcloud auth application-default login
  --impersonate-service-account=SA`): signed by google-auth through IAM;
- any other identity (a user's ADC, a VM's service account) with `SERVE_GCP_SIGNING_SERVICE_ACCOUNT`
  naming the service account to sign as (on a GCE VM its own account is used when unset):
  signed through the IAM Credentials API's `signBlob`, which needs
  `iam.serviceAccounts.signBlob` on that account (role Service Account Token Creator).
The URL says which account signed it; that account needs read access to the bucket.

Errors: GCS's JSON API answers with an HTTP status and `errors[].reason` ("HTTP status and
error codes for JSON"); one table from those to the vocabulary, the status deciding where no
reason is listed.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import threading
from collections.abc import Mapping
from typing import Any

import google.auth
import requests
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth import credentials as gcreds
from google.auth import exceptions as auth_exc
from google.auth import iam
from google.auth.transport.requests import Request
from google.cloud import storage  # type: ignore[attr-defined]
from google.cloud.storage.retry import DEFAULT_RETRY

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
    SignedObject,
    bucket_name,
    bundle_key,
    checked_seconds,
    directory_prefix,
    label_value,
    no_bucket,
    nothing_at,
    ownership_tags,
    service_prefix,
    split_source,
)

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
CREDENTIALS_HINT = (
    "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS) for "
    "an identity with roles/storage.admin on the project's spotserve-* buckets, and set "
    "GOOGLE_CLOUD_PROJECT"
)
SIGNING_HINT = (
    "signed URLs need credentials that can sign: a service-account key "
    "(GOOGLE_APPLICATION_CREDENTIALS), impersonation (`gcloud auth application-default login "
    "--impersonate-service-account=SA`), or SERVE_GCP_SIGNING_SERVICE_ACCOUNT=SA with "
    "iam.serviceAccounts.signBlob on SA (role Service Account Token Creator)"
)

REASONS: dict[str, type[ProvisionError]] = {
    "rateLimitExceeded": TransientError,
    "userRateLimitExceeded": TransientError,
    "backendError": TransientError,
    "internalError": TransientError,
    "accountDisabled": CredentialsError,
    "userProjectAccountProblem": CredentialsError,
    "conflict": InvalidRequest,
}
"""Reasons whose meaning differs from their status (a 403 rate limit is no auth problem)."""

_TIMEOUT = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)
_RETRY = DEFAULT_RETRY.with_delay(initial=0.5, maximum=2.0).with_timeout(4.0)
"""google-cloud-storage's retry (429, 5xx, connection errors) with a few seconds' budget
instead of its default 120 s: a cloud that stays down is a TransientError for a later tick."""
_CALL: dict[str, Any] = {"timeout": _TIMEOUT, "retry": _RETRY}
_CHUNK = 16 * 1024 * 1024
_SIGNING_FAILED = "Error calling the IAM signBlob API"

SDK_ERRORS = (gexc.GoogleAPIError, auth_exc.GoogleAuthError, requests.RequestException)


def classify(exc: BaseException) -> ProvisionError:
    """The vocabulary error for anything google-cloud-storage raised; the one mapping."""
    if isinstance(exc, auth_exc.TransportError) and _SIGNING_FAILED not in str(exc):
        return TransientError(f"could not reach Google's token or IAM endpoint: {exc}")
    if isinstance(exc, auth_exc.GoogleAuthError):
        hint = SIGNING_HINT if _SIGNING_FAILED in str(exc) else CREDENTIALS_HINT
        return CredentialsError(f"{exc}; {hint}", code="auth")
    if isinstance(exc, gexc.GoogleAPICallError):
        status = int(exc.code or 0)
        reasons = [str(e.get("reason", "")) for e in exc.errors if isinstance(e, dict)]
        kind = next((REASONS[r] for r in reasons if r in REASONS), None)
        kind = kind or kind_for_status(status)
        message = f"{exc.message}; {CREDENTIALS_HINT}" if kind is CredentialsError else exc.message
        return kind(message, code=next(iter(reasons), "") or str(status))
    return TransientError(f"could not reach Cloud Storage: {exc}")


_mapped = mapped_methods(SDK_ERRORS, classify)


class IamSigning(gcreds.Signing):
    """Signs through the IAM Credentials API's signBlob as `email`, with the shared timeouts
    (google-cloud-storage's own signBlob path waits up to 120 s per attempt)."""

    def __init__(self, credentials: gcreds.Credentials, email: str) -> None:
        request = functools.partial(Request(), timeout=_TIMEOUT)
        self._signer = iam.Signer(request, credentials, email)  # type: ignore[no-untyped-call]
        self._email = email

    def sign_bytes(self, message: bytes) -> bytes:
        return bytes(self._signer.sign(message))

    @property
    def signer_email(self) -> str:
        return self._email

    @property
    def signer(self) -> iam.Signer:
        return self._signer


class GCSBundleStore:
    """The `ObjectStore` for GCP. Constructor does no I/O; credentials resolve on first use."""

    cloud = "gcp"

    def __init__(
        self,
        installation_id: str,
        *,
        env: Mapping[str, str] | None = None,
        credentials: gcreds.Credentials | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.installation_id = installation_id
        self.bucket = bucket_name(installation_id)
        self.project = env.get("GOOGLE_CLOUD_PROJECT") or None
        self.location = env.get("SERVE_GCP_BUNDLE_LOCATION") or "US"
        self.emulator = env.get("STORAGE_EMULATOR_HOST") or None
        self._signing_account = env.get("SERVE_GCP_SIGNING_SERVICE_ACCOUNT") or None
        self._credentials = credentials
        self._client: storage.Client | None = None
        self._signing: gcreds.Signing | None = None
        self._ensured = False
        self._lock = threading.Lock()

    @_mapped
    def ensure_bucket(self) -> str:
        if self._ensured:
            return self.bucket
        client = self._connect()
        try:
            found = client.lookup_bucket(self.bucket, **_CALL)
        except gexc.Forbidden:
            found = None  # another project's, or unreadable: the insert says which
        bucket = found or self._create(client)
        if _ownership_missing(bucket, self.installation_id):
            _shape(bucket, self.installation_id)
            bucket.patch(**_CALL)
        self._ensured = True
        return self.bucket

    @_mapped
    def put_bundle(self, service: str, bundle: Bundle) -> str:
        key = bundle_key(service, bundle)
        self.ensure_bucket()
        bucket = self._connect().bucket(self.bucket)
        found = bucket.get_blob(key, **_CALL)
        if found is not None and found.size == bundle.size:
            return key
        blob = bucket.blob(key, chunk_size=_CHUNK)
        # Create-only (or replace exactly the stale object seen), so that retries are safe;
        # a racing writer of the same content-addressed key may win: same bytes.
        with contextlib.suppress(gexc.PreconditionFailed):
            blob.upload_from_filename(
                str(bundle.path),
                content_type=BUNDLE_CONTENT_TYPE,
                if_generation_match=found.generation if found is not None else 0,
                **_CALL,
            )
        return key

    @_mapped
    def signed_url(self, key: str, seconds: int) -> str:
        return self._sign(self._connect().bucket(self.bucket).blob(key), seconds)

    @_mapped
    def delete_service(self, service: str) -> bool:
        prefix = service_prefix(service)
        client = self._connect()
        try:
            for blob in client.list_blobs(self.bucket, prefix=prefix, **_CALL):
                with contextlib.suppress(gexc.NotFound):  # gone already
                    blob.delete(**_CALL)
            left = list(client.list_blobs(self.bucket, prefix=prefix, max_results=1, **_CALL))
        except gexc.NotFound:
            return True  # no bucket, no objects
        return not left

    @_mapped
    def sign_source(self, source: str, seconds: int) -> list[SignedObject] | None:
        parsed = split_source(source, "gs")
        if parsed is None:
            return None
        bucket_id, path = parsed
        client = self._connect()
        bucket = client.bucket(bucket_id)
        try:
            if path and not path.endswith("/"):
                blob = bucket.get_blob(path, **_CALL)
                if blob is not None:
                    return [SignedObject(self._sign(blob, seconds), "")]
            prefix = directory_prefix(path)
            names = [b.name for b in client.list_blobs(bucket_id, prefix=prefix, **_CALL)]
        except gexc.Forbidden:
            return None
        except gexc.NotFound as exc:
            raise no_bucket(source, bucket_id) from exc
        found = [
            SignedObject(self._sign(bucket.blob(n), seconds), n[len(prefix) :])
            for n in names
            if not n.endswith("/")
        ]
        if not found:
            raise nothing_at(source)
        return found

    def _create(self, client: storage.Client) -> storage.Bucket:
        bucket = client.bucket(self.bucket)
        _shape(bucket, self.installation_id)
        try:
            return client.create_bucket(
                bucket, project=self.project, location=self.location, **_CALL
            )
        except gexc.Conflict:
            try:
                return client.get_bucket(self.bucket, **_CALL)  # made meanwhile by us
            except gexc.Forbidden as exc:
                raise InvalidRequest(
                    f"bucket name {self.bucket} is taken by another project (GCS bucket names "
                    "are global); start this installation with a new id",
                    code="conflict",
                ) from exc

    def _sign(self, blob: storage.Blob, seconds: int) -> str:
        return str(
            blob.generate_signed_url(
                version="v4",
                expiration=datetime.timedelta(seconds=checked_seconds(seconds)),
                method="GET",
                credentials=self._signing_credentials(),
            )
        )

    def _connect(self) -> storage.Client:
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> storage.Client:
        if self.emulator:
            # As google-cloud-storage does for STORAGE_EMULATOR_HOST: no credentials to it.
            return storage.Client(
                project=self.project or "emulator",
                credentials=gcreds.AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options=ClientOptions(api_endpoint=self.emulator),
            )
        credentials, project = self._resolve_credentials()
        if not (self.project or project):
            raise CredentialsError(f"no GCP project is set; {CREDENTIALS_HINT}", code="no-project")
        return storage.Client(project=self.project or project, credentials=credentials)

    def _resolve_credentials(self) -> tuple[gcreds.Credentials, str | None]:
        if self._credentials is not None:
            return self._credentials, None
        credentials, project = google.auth.default(scopes=list(SCOPES))
        self._credentials = credentials
        return credentials, project

    def _signing_credentials(self) -> gcreds.Signing:
        with self._lock:
            if self._signing is None:
                self._signing = self._new_signing()
            return self._signing

    def _new_signing(self) -> gcreds.Signing:
        credentials, _ = self._resolve_credentials()
        if isinstance(credentials, gcreds.Signing):
            return credentials
        email = self._signing_account or _own_service_account(credentials)
        if not email:
            raise CredentialsError(
                f"{type(credentials).__name__} credentials cannot sign; {SIGNING_HINT}",
                code="cannot-sign",
            )
        return IamSigning(credentials, email)


def _own_service_account(credentials: gcreds.Credentials) -> str | None:
    """A GCE VM's own service account (known once its credentials have been refreshed)."""
    email = getattr(credentials, "service_account_email", None)
    if email == "default":
        credentials.refresh(functools.partial(Request(), timeout=_TIMEOUT))  # type: ignore[no-untyped-call]
        email = getattr(credentials, "service_account_email", None)
    return str(email) if email and email != "default" else None


def _wanted_labels(bucket: storage.Bucket, installation_id: str) -> dict[str, str]:
    ours = {k: label_value(v) for k, v in ownership_tags(installation_id).items()}
    return {**(bucket.labels or {}), **ours}


def _ownership_missing(bucket: storage.Bucket, installation_id: str) -> bool:
    iam_config = bucket.iam_configuration
    return (
        bucket.labels != _wanted_labels(bucket, installation_id)
        or iam_config.public_access_prevention != "enforced"
        or not iam_config.uniform_bucket_level_access_enabled
    )


def _shape(bucket: storage.Bucket, installation_id: str) -> None:
    """Labels, uniform access and public access prevention; the setters mark them for a
    patch, so only changed fields are sent."""
    bucket.labels = _wanted_labels(bucket, installation_id)
    bucket.iam_configuration.public_access_prevention = "enforced"
    bucket.iam_configuration.uniform_bucket_level_access_enabled = True
