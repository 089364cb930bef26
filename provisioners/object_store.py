"""Where a cloud's replicas fetch their bundle: one bucket (or container) per installation.

A VM cannot reach a controller behind NAT, so the controller stages each version's bundle in
its cloud's object store and hands the VM a short-lived signed GET URL (docs/cloud-replicas.md).
Layout, the same on every cloud:

    spotserve-<installation id>/            bucket/container; private; tagged or labelled
        bundles/<service>/<digest>.tar.gz   serve-managed-by=spotserve, serve-controller-id=<id>

Content-addressed: a key names its bytes, so an object that exists with the bundle's size is
the bundle and is never uploaded again. `delete_service` empties one service's prefix at
`serve down`; the bucket stays for the installation.

Implementations (`s3_store`, `gcs_store`, `azure_blob_store`) raise only
`provisioners.errors.ProvisionError` subclasses, give every call the shared connect/read
timeouts, and do no I/O in their constructors.

`sign_source` decides who copies a bucket file mount: a list of signed URLs when this store
can read the source; None when it cannot (another cloud's scheme, another storage account,
access refused to the controller's identity), so the replica copies it with its own CLI and
identity; and `InvalidRequest` when the bucket, or anything under the path, does not exist,
because then no identity can copy it and the operator should hear so before a VM boots.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from provisioners.base import MANAGED_BY, TAG_CONTROLLER_ID, TAG_MANAGED_BY, Bundle, LaunchRequest
from provisioners.errors import InvalidRequest

BUCKET_PREFIX = "spotserve-"
BUNDLES = "bundles"
BUNDLE_CONTENT_TYPE = "application/gzip"
MAX_URL_SECONDS = 7 * 24 * 3600
"""The longest validity all three clouds sign for: S3 SigV4 presigned URLs and GCS V4 signed
URLs are capped at 7 days, and so is an Azure user delegation key (hence its SAS)."""

BUNDLE_URL_SECONDS = 6 * 3600
"""How long a replica's bundle URL (in its boot script) stays valid: a VM that is slow to
get capacity or to boot still finds its bundle; it is fetched once, at boot."""

_NAME_MAX = 63
_LABEL_VALUE_MAX = 63


@dataclass(frozen=True)
class SignedObject:
    """One object of a bucket file mount, fetchable without credentials until it expires."""

    url: str
    path: str
    """Where it goes, relative to the mount's target: '' for a single object (the target is
    the file), else its key below the mounted prefix (`sub/dir/file.bin`)."""


class ObjectStore(Protocol):
    """One cloud's bundle store. Raises only `ProvisionError` subclasses."""

    cloud: str

    def ensure_bucket(self) -> str:
        """Create the installation's private, tagged bucket if missing (and put back tags or
        privacy someone took off); idempotent; returns its name."""
        ...

    def put_bundle(self, service: str, bundle: Bundle) -> str:
        """Upload the bundle to `bundles/<service>/<digest>.tar.gz` unless an object with
        that key and size exists already; returns the key. Ensures the bucket first."""
        ...

    def signed_url(self, key: str, seconds: int) -> str:
        """A GET URL for `key` that needs no credentials, valid for `seconds`."""
        ...

    def delete_service(self, service: str) -> bool:
        """Delete every object under `bundles/<service>/`; True once none is left (also when
        the bucket does not exist). Idempotent."""
        ...

    def sign_source(self, source: str, seconds: int) -> list[SignedObject] | None:
        """Signed URLs for a bucket file mount in this cloud's scheme: the object, or every
        object under the prefix. None if this store cannot read it; `InvalidRequest` if
        there is nothing there at all (see the module docstring)."""
        ...


def bucket_name(installation_id: str) -> str:
    """`spotserve-<installation id>` as a name every cloud accepts for a bucket or container.

    The common rules (S3 and GCS bucket names, Azure container names): 3-63 characters of
    lowercase letters, digits and single hyphens, starting and ending with a letter or digit.
    An id that breaks them is lowercased, runs of other characters become one hyphen, and a
    short hash of the original id is appended, so that two ids never share a bucket.
    """
    plain = f"{BUCKET_PREFIX}{installation_id}"
    cleaned = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", plain.lower())).strip("-")
    if cleaned == plain and len(plain) <= _NAME_MAX:
        return plain
    suffix = hashlib.sha256(installation_id.encode()).hexdigest()[:8]
    return f"{cleaned[: _NAME_MAX - len(suffix) - 1].rstrip('-')}-{suffix}"


def ownership_tags(installation_id: str) -> dict[str, str]:
    """The tags the bucket carries: made by spotserve, for this installation."""
    return {TAG_MANAGED_BY: MANAGED_BY, TAG_CONTROLLER_ID: installation_id}


def label_value(value: str) -> str:
    """A value GCS accepts as a label (lowercase letters, digits, `_` and `-`, at most 63)."""
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:_LABEL_VALUE_MAX]


def service_prefix(service: str) -> str:
    """`bundles/<service>/`: the trailing slash keeps `web` from matching `web2`."""
    if not service or "/" in service:
        raise InvalidRequest(f"service name {service!r} cannot name an object prefix")
    return f"{BUNDLES}/{service}/"


def bundle_key(service: str, bundle: Bundle) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", bundle.digest):
        raise InvalidRequest(f"bundle digest {bundle.digest!r} is not a SHA-256 in hex")
    return f"{service_prefix(service)}{bundle.digest}.tar.gz"


def checked_seconds(seconds: int) -> int:
    """A URL lifetime every cloud signs: 1 second to 7 days."""
    if not 1 <= seconds <= MAX_URL_SECONDS:
        raise InvalidRequest(f"a signed URL lives 1 to {MAX_URL_SECONDS} seconds, not {seconds}")
    return seconds


def split_source(source: str, scheme: str) -> tuple[str, str] | None:
    """`scheme://bucket/path` as (bucket, path); None for any other scheme."""
    head = f"{scheme}://"
    if not source.startswith(head):
        return None
    bucket, _, path = source[len(head) :].partition("/")
    if not bucket:
        raise InvalidRequest(f"{source}: no bucket named")
    return bucket, path


def directory_prefix(path: str) -> str:
    """The listing prefix for a mount path taken as a directory ('' is the whole bucket)."""
    return f"{path.rstrip('/')}/" if path.strip("/") else ""


def nothing_at(source: str) -> InvalidRequest:
    return InvalidRequest(f"{source}: no object at that path or under it", code="NotFound")


def no_bucket(source: str, bucket: str) -> InvalidRequest:
    return InvalidRequest(f"{source}: bucket {bucket} does not exist", code="NoSuchBucket")


@runtime_checkable
class SignsBucketSources(Protocol):
    """An adapter whose cloud's object store can hand a replica a bucket mount's objects
    through signed URLs, so the VM needs no credentials of its own."""

    def sign_source(self, source: str, seconds: int) -> list[SignedObject] | None:
        """The object, or every object under the prefix, `source` names; None if this
        store cannot read it (the replica then tries its own cloud CLI)."""
        ...


def stage_bundle(store: ObjectStore, request: LaunchRequest) -> str | None:
    """Put the request's bundle in the store (once per digest) and return the signed URL its
    boot script carries; None when the version has no bundle. Called from `launch`, which
    runs in the background, so an upload's seconds hold no tick."""
    if request.bundle is None:
        return None
    key = store.put_bundle(request.service, request.bundle)
    return store.signed_url(key, BUNDLE_URL_SECONDS)
