"""One kit per cloud for the object store contract tests: the store under test, configured
the way an operator configures it, and the test's own view of the emulator through the
same cloud's SDK (to read tags back, write objects, see an object's revision).

Which emulator refuses what: moto's S3 refuses an unsigned GET of a private object, and
does not check a presigned URL's expiry; gcp-storage-emulator checks neither (it serves
any object to anyone); Azurite checks both, as Azure does.
"""

from __future__ import annotations

import datetime
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from azure.storage.blob import BlobServiceClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from provisioners.azure_blob_store import AzureBlobStore
from provisioners.gcs_store import GCSBundleStore
from provisioners.object_store import ObjectStore
from provisioners.s3_store import S3BundleStore


class Kit(Protocol):
    cloud: str
    refuses_unsigned: bool
    refuses_expired: bool

    def store(self, installation_id: str) -> ObjectStore: ...
    def store_at(self, endpoint: str, installation_id: str) -> ObjectStore: ...
    def ownership(self, bucket: str) -> tuple[str, str]: ...
    def private(self, bucket: str) -> bool: ...
    def track_writes(self, bucket: str) -> None: ...
    def revision(self, bucket: str, key: str) -> str: ...
    def write(self, bucket: str, key: str, data: bytes) -> None: ...
    def keys(self, bucket: str, prefix: str) -> list[str]: ...
    def source(self, bucket: str, path: str) -> str: ...
    def unsigned_url(self, bucket: str, key: str) -> str: ...
    def seconds_left(self, url: str) -> float: ...


def new_installation_id() -> str:
    return f"ctrl-{secrets.token_hex(4)}"


@dataclass
class S3Kit:
    """moto's S3; the store finds it through AWS_ENDPOINT_URL, as boto3 does."""

    endpoint: str
    monkeypatch: pytest.MonkeyPatch | None = None
    """Sets `env` in os.environ for the test, where boto3 looks."""
    region: str = "eu-west-1"
    cloud: str = "aws"
    refuses_unsigned: bool = True
    refuses_expired: bool = False

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "SERVE_AWS_BUNDLE_REGION": self.region,
        }

    def store(self, installation_id: str) -> ObjectStore:
        return S3BundleStore(installation_id)  # os.environ, which the fixture set to `env`

    def store_at(self, endpoint: str, installation_id: str) -> ObjectStore:
        assert self.monkeypatch is not None
        self.monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        return S3BundleStore(installation_id)

    @property
    def s3(self) -> Any:
        return boto3.client(
            "s3",
            region_name=self.region,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def ownership(self, bucket: str) -> tuple[str, str]:
        tags = {t["Key"]: t["Value"] for t in self.s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
        return tags["serve-managed-by"], tags["serve-controller-id"]

    def private(self, bucket: str) -> bool:
        block = self.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        return all(block.values()) and len(block) == 4

    def location(self, bucket: str) -> str:
        return str(self.s3.get_bucket_location(Bucket=bucket)["LocationConstraint"])

    def track_writes(self, bucket: str) -> None:
        """Versioning on: every upload of a key becomes a version of its own."""
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def revision(self, bucket: str, key: str) -> str:
        versions = self.s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        return ",".join(v["VersionId"] for v in versions if v["Key"] == key)

    def write(self, bucket: str, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=data)

    def keys(self, bucket: str, prefix: str) -> list[str]:
        found = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return [o["Key"] for o in found]

    def source(self, bucket: str, path: str) -> str:
        return f"s3://{bucket}/{path}"

    def unsigned_url(self, bucket: str, key: str) -> str:
        return f"{self.endpoint}/{bucket}/{key}"

    def seconds_left(self, url: str) -> float:
        query = parse_qs(urlsplit(url).query)
        signed = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
        ends = signed.replace(tzinfo=datetime.UTC) + datetime.timedelta(
            seconds=int(query["X-Amz-Expires"][0])
        )
        return (ends - datetime.datetime.now(datetime.UTC)).total_seconds()


def service_account_key(path: Path) -> Path:
    """A service-account key file as GCP issues one (the private key made here)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "spotserve-test",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": "bundles@spotserve-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(info))
    return path


@dataclass
class GCSKit:
    """gcp-storage-emulator; the store finds it through STORAGE_EMULATOR_HOST and signs with
    a service-account key file named by GOOGLE_APPLICATION_CREDENTIALS (set in os.environ,
    where google-auth looks for it, by the fixture)."""

    endpoint: str
    key_file: Path
    cloud: str = "gcp"
    refuses_unsigned: bool = False
    refuses_expired: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            "STORAGE_EMULATOR_HOST": self.endpoint,
            "GOOGLE_CLOUD_PROJECT": "spotserve-test",
            **self.extra,
        }

    def store(self, installation_id: str) -> ObjectStore:
        return GCSBundleStore(installation_id, env=self.env)

    def store_at(self, endpoint: str, installation_id: str) -> ObjectStore:
        return GCSBundleStore(installation_id, env={**self.env, "STORAGE_EMULATOR_HOST": endpoint})

    @property
    def gcs(self) -> storage.Client:
        return storage.Client(
            project="spotserve-test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.endpoint},
        )

    def ownership(self, bucket: str) -> tuple[str, str]:
        labels = self.gcs.get_bucket(bucket).labels
        return labels["serve-managed-by"], labels["serve-controller-id"]

    def private(self, bucket: str) -> bool:
        iam = self.gcs.get_bucket(bucket).iam_configuration
        return bool(
            iam.public_access_prevention == "enforced" and iam.uniform_bucket_level_access_enabled
        )

    def track_writes(self, bucket: str) -> None:
        """Nothing to do: every upload gets a new generation."""

    def revision(self, bucket: str, key: str) -> str:
        blob = self.gcs.bucket(bucket).get_blob(key)
        return str(blob.generation if blob else None)

    def write(self, bucket: str, key: str, data: bytes) -> None:
        self.gcs.bucket(bucket).blob(key).upload_from_string(data)

    def keys(self, bucket: str, prefix: str) -> list[str]:
        return [b.name for b in self.gcs.list_blobs(bucket, prefix=prefix)]

    def source(self, bucket: str, path: str) -> str:
        return f"gs://{bucket}/{path}"

    def unsigned_url(self, bucket: str, key: str) -> str:
        return f"{self.endpoint}/{bucket}/{key}"

    def seconds_left(self, url: str) -> float:
        query = parse_qs(urlsplit(url).query)
        signed = datetime.datetime.strptime(query["X-Goog-Date"][0], "%Y%m%dT%H%M%SZ")
        ends = signed.replace(tzinfo=datetime.UTC) + datetime.timedelta(
            seconds=int(query["X-Goog-Expires"][0])
        )
        return (ends - datetime.datetime.now(datetime.UTC)).total_seconds()


@dataclass
class AzureKit:
    """Azurite; the store reaches it through AZURE_STORAGE_CONNECTION_STRING (the
    development account and its key), so SAS URLs are signed with the account key."""

    connection_string: str
    endpoint: str
    cloud: str = "azure"
    refuses_unsigned: bool = True
    refuses_expired: bool = True

    @property
    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def store(self, installation_id: str) -> ObjectStore:
        return AzureBlobStore(installation_id, env=self.env)

    def store_at(self, endpoint: str, installation_id: str) -> ObjectStore:
        moved = self.connection_string.replace(self.endpoint, f"{endpoint}/devstoreaccount1")
        return AzureBlobStore(installation_id, env={"AZURE_STORAGE_CONNECTION_STRING": moved})

    @property
    def blobs(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.connection_string)

    def ownership(self, bucket: str) -> tuple[str, str]:
        # Metadata names are C# identifiers, so the tag names are written with underscores.
        meta = self.blobs.get_container_client(bucket).get_container_properties().metadata
        return meta["serve_managed_by"], meta["serve_controller_id"]

    def private(self, bucket: str) -> bool:
        props = self.blobs.get_container_client(bucket).get_container_properties()
        return props.public_access is None

    def track_writes(self, bucket: str) -> None:
        """Nothing to do: every upload gets a new ETag."""

    def revision(self, bucket: str, key: str) -> str:
        return str(self.blobs.get_blob_client(bucket, key).get_blob_properties().etag)

    def write(self, bucket: str, key: str, data: bytes) -> None:
        self.blobs.get_blob_client(bucket, key).upload_blob(data, overwrite=True)

    def keys(self, bucket: str, prefix: str) -> list[str]:
        container = self.blobs.get_container_client(bucket)
        return list(container.list_blob_names(name_starts_with=prefix))

    def source(self, bucket: str, path: str) -> str:
        return f"{self.endpoint}/{bucket}/{path}"

    def unsigned_url(self, bucket: str, key: str) -> str:
        return f"{self.endpoint}/{bucket}/{key}"

    def seconds_left(self, url: str) -> float:
        expiry = parse_qs(urlsplit(url).query)["se"][0]
        ends = datetime.datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        return (ends - datetime.datetime.now(datetime.UTC)).total_seconds()
