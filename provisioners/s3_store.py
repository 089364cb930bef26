"""The AWS bundle store: an S3 bucket per installation, presigned GETs for the replicas.

The bucket lives in `SERVE_AWS_BUNDLE_REGION` (default `AWS_DEFAULT_REGION`, else us-east-1);
an existing one is used wherever it is, and URLs are signed for its own region. Endpoints are
boto3's business (`AWS_ENDPOINT_URL` points it at moto). The bucket is made private the way
S3 does it today (all four Block Public Access settings on; objects are never given ACLs),
tagged with the ownership tags, and given a lifecycle rule that aborts multipart uploads
left incomplete for a day, so an upload cut off midway does not leave parts billed forever.

URLs are SigV4 (`signature_version=s3v4`: SigV2 is refused by regions opened since 2014)
and live at most 7 days, and never longer than the credentials that signed them: a URL
signed with temporary credentials (SSO, an assumed role) dies with that session.

Errors: one table of S3's codes (Amazon S3 API Reference, "Error responses", list of error
codes); a code not in it is a `TransientError` when S3 answered 5xx, else an
`InvalidRequest`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    TokenRetrievalError,
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
    SignedObject,
    bucket_name,
    bundle_key,
    checked_seconds,
    directory_prefix,
    no_bucket,
    nothing_at,
    ownership_tags,
    service_prefix,
    split_source,
)

CREDENTIALS_HINT = (
    "configure AWS credentials for an identity allowed s3:CreateBucket, s3:ListBucket, "
    "s3:GetBucketTagging, s3:PutBucketTagging, s3:PutBucketPublicAccessBlock, "
    "s3:PutLifecycleConfiguration, s3:GetObject, s3:PutObject and s3:DeleteObject on "
    "arn:aws:s3:::spotserve-* (and s3:ListBucket, s3:GetObject on the buckets your "
    "file_mounts read)"
)

ERROR_TYPES: dict[str, type[ProvisionError]] = {
    "AccessDenied": CredentialsError,
    "AccountProblem": CredentialsError,
    "AllAccessDisabled": CredentialsError,
    "InvalidAccessKeyId": CredentialsError,
    "InvalidSecurity": CredentialsError,
    "InvalidToken": CredentialsError,
    "ExpiredToken": CredentialsError,
    "SignatureDoesNotMatch": CredentialsError,
    "TokenRefreshRequired": CredentialsError,
    "NotSignedUp": CredentialsError,
    "BucketAlreadyExists": InvalidRequest,
    "InvalidBucketName": InvalidRequest,
    "InvalidBucketState": InvalidRequest,
    "TooManyBuckets": InvalidRequest,
    "IllegalLocationConstraintException": InvalidRequest,
    "InvalidLocationConstraint": InvalidRequest,
    "InvalidArgument": InvalidRequest,
    "InvalidRequest": InvalidRequest,
    "RequestTimeTooSkewed": InvalidRequest,
    "NoSuchBucket": InvalidRequest,
    "EntityTooLarge": InvalidRequest,
    "InternalError": TransientError,
    "ServiceUnavailable": TransientError,
    "SlowDown": TransientError,
    "RequestTimeout": TransientError,
    "OperationAborted": TransientError,
}

_HINTS = {
    "BucketAlreadyExists": "another AWS account owns a bucket of that name; S3 bucket names "
    "are global. Start this installation with a new id (a new SERVE_HOME and database)",
    "TooManyBuckets": "the account's bucket quota is used up; delete unused buckets or ask "
    "for more in Service Quotas",
    "RequestTimeTooSkewed": "this machine's clock is off; synchronise it (NTP)",
}

_MISSING = {"404", "NoSuchKey", "NotFound"}
_MISSING_BUCKET = {"NoSuchBucket"}
_FORBIDDEN = {"403", "AccessDenied", "AllAccessDisabled"}

_CONFIG = Config(
    signature_version="s3v4",
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "max_attempts": 3},
)
_TRANSFER = TransferConfig(multipart_chunksize=16 * 1024 * 1024, max_concurrency=4)
_ABORT_INCOMPLETE_UPLOADS = {
    "Rules": [
        {
            "ID": "spotserve-abort-incomplete-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    ]
}
_PRIVATE = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def classify(exc: BaseException) -> ProvisionError:
    """The vocabulary error for anything boto3 raised; the one place S3 errors are mapped."""
    cause = exc.__context__ if isinstance(exc, S3UploadFailedError) else exc
    if isinstance(cause, ClientError):
        code, message, status = _code(cause), _message(cause), _status(cause)
        kind = ERROR_TYPES.get(code) or kind_for_status(status)
        if kind is CredentialsError:
            message = f"{message}; {CREDENTIALS_HINT}"
        elif code in _HINTS:
            message = f"{message}; {_HINTS[code]}"
        return kind(message, code=code or str(status))
    if isinstance(
        cause, NoCredentialsError | PartialCredentialsError | ProfileNotFound | TokenRetrievalError
    ):
        return CredentialsError(f"{cause}; {CREDENTIALS_HINT}", code="no-credentials")
    if isinstance(cause, ConnectionError | HTTPClientError):
        return TransientError(f"could not reach S3 ({cause}); check the network")
    return InvalidRequest(str(exc))


_mapped = mapped_methods((ClientError, BotoCoreError, S3UploadFailedError), classify)


class S3BundleStore:
    """The `ObjectStore` for AWS. Constructor does no I/O; clients are made on first use."""

    cloud = "aws"

    def __init__(
        self,
        installation_id: str,
        *,
        env: Mapping[str, str] | None = None,
        session: boto3.session.Session | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.installation_id = installation_id
        self.bucket = bucket_name(installation_id)
        self.region = (
            env.get("SERVE_AWS_BUNDLE_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        )
        self._session = session
        self._bucket_region: str | None = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @_mapped
    def ensure_bucket(self) -> str:
        if self._bucket_region is not None:
            return self.bucket
        try:
            region = self._region_of(self.bucket)
        except ClientError as exc:
            if _code(exc) not in _FORBIDDEN:
                raise
            region = None  # another account's bucket, or no ListBucket: CreateBucket says which
        s3 = self._client(region or self._create())
        self._ensure_tags(s3)
        s3.put_public_access_block(Bucket=self.bucket, PublicAccessBlockConfiguration=_PRIVATE)
        self._bucket_region = s3.meta.region_name
        return self.bucket

    @_mapped
    def put_bundle(self, service: str, bundle: Bundle) -> str:
        key = bundle_key(service, bundle)
        self.ensure_bucket()
        s3 = self._client(self._bucket_region)
        if self._size_of(s3, self.bucket, key) == bundle.size:
            return key
        s3.upload_file(
            str(bundle.path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": BUNDLE_CONTENT_TYPE},
            Config=_TRANSFER,
        )
        return key

    @_mapped
    def signed_url(self, key: str, seconds: int) -> str:
        region = self._bucket_region or self._region_of(self.bucket) or self.region
        return self._presign(self._client(region), self.bucket, key, seconds)

    @_mapped
    def delete_service(self, service: str) -> bool:
        prefix = service_prefix(service)
        region = self._bucket_region or self._region_of(self.bucket)
        if region is None:
            return True
        s3 = self._client(region)
        for keys in _batches(_keys(s3, self.bucket, prefix), 1000):
            answer = s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            )
            if answer.get("Errors"):
                # DeleteObjects answers 200 and lists each key it refused: the first says why.
                raise classify(ClientError({"Error": answer["Errors"][0]}, "DeleteObjects"))
        return next(_keys(s3, self.bucket, prefix), None) is None

    @_mapped
    def sign_source(self, source: str, seconds: int) -> list[SignedObject] | None:
        parsed = split_source(source, "s3")
        if parsed is None:
            return None
        bucket, path = parsed
        try:
            region = self._region_of(bucket)
        except ClientError as exc:
            if _code(exc) in _FORBIDDEN:
                return None
            raise
        if region is None:
            raise no_bucket(source, bucket)
        s3 = self._client(region)
        try:
            return self._sign_path(s3, source, bucket, path, seconds)
        except ClientError as exc:
            if _code(exc) in _FORBIDDEN:
                return None
            raise

    def _sign_path(
        self, s3: Any, source: str, bucket: str, path: str, seconds: int
    ) -> list[SignedObject]:
        if path and not path.endswith("/") and self._size_of(s3, bucket, path) is not None:
            return [SignedObject(self._presign(s3, bucket, path, seconds), "")]
        prefix = directory_prefix(path)
        found = [
            SignedObject(self._presign(s3, bucket, key, seconds), key[len(prefix) :])
            for key in _keys(s3, bucket, prefix)
            if not key.endswith("/")
        ]
        if not found:
            raise nothing_at(source)
        return found

    def _create(self) -> str:
        s3 = self._client(self.region)
        where = {}
        if self.region != "us-east-1":
            # us-east-1 is the one region CreateBucket refuses to be named in.
            where = {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        try:
            s3.create_bucket(Bucket=self.bucket, **where)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise
            return self._region_of(self.bucket) or self.region
        # Only on a bucket it made: the call replaces every lifecycle rule the bucket has.
        s3.put_bucket_lifecycle_configuration(
            Bucket=self.bucket, LifecycleConfiguration=_ABORT_INCOMPLETE_UPLOADS
        )
        return self.region

    def _ensure_tags(self, s3: Any) -> None:
        """Add the ownership tags, keeping any the operator put on the bucket."""
        try:
            tags = s3.get_bucket_tagging(Bucket=self.bucket)["TagSet"]
        except ClientError as exc:
            if _code(exc) != "NoSuchTagSet":
                raise
            tags = []
        have = {t["Key"]: t["Value"] for t in tags}
        wanted = {**have, **ownership_tags(self.installation_id)}
        if wanted != have:
            tag_set = [{"Key": k, "Value": v} for k, v in wanted.items()]
            s3.put_bucket_tagging(Bucket=self.bucket, Tagging={"TagSet": tag_set})

    def _region_of(self, bucket: str) -> str | None:
        """The bucket's region, or None if no bucket has that name (403 is raised)."""
        try:
            answer = self._client(self.region).head_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) in _MISSING | _MISSING_BUCKET:
                return None
            raise
        headers = answer["ResponseMetadata"].get("HTTPHeaders", {})
        return str(answer.get("BucketRegion") or headers.get("x-amz-bucket-region") or self.region)

    @staticmethod
    def _size_of(s3: Any, bucket: str, key: str) -> int | None:
        try:
            return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise

    @staticmethod
    def _presign(s3: Any, bucket: str, key: str, seconds: int) -> str:
        return str(
            s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": key},
                ExpiresIn=checked_seconds(seconds),
            )
        )

    def _client(self, region: str | None) -> Any:
        region = region or self.region
        with self._lock:
            if region not in self._clients:
                session = self._session or boto3.session.Session()
                try:
                    client = session.client("s3", region_name=region, config=_CONFIG)
                except ValueError as exc:  # botocore's word for an endpoint URL it cannot use
                    raise InvalidRequest(f"{exc}; check AWS_ENDPOINT_URL", code="endpoint") from exc
                self._clients[region] = client
            return self._clients[region]


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
