"""What each cloud's store does beyond the shared contract: regions, credentials, repairs."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from azure.core.credentials import AccessToken
from azure.storage.blob import PublicAccess
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from provisioners.azure_blob_store import AzureBlobStore
from provisioners.errors import CredentialsError
from provisioners.gcs_store import GCSBundleStore
from provisioners.object_store import bucket_name
from provisioners.s3_store import S3BundleStore
from tests.provisioners.object_store_kits import AzureKit, GCSKit, S3Kit, new_installation_id
from tests.provisioners.test_object_stores import fetch, make_bundle
from tests.support import azurite as azurite_npm
from tests.support.moto_server import moto_server
from tests.support.tls import self_signed

# AWS (moto's S3)


def test_s3_bucket_is_made_in_the_configured_region(s3_kit: S3Kit) -> None:
    bucket = S3BundleStore(new_installation_id()).ensure_bucket()

    assert s3_kit.location(bucket) == "eu-west-1"


def test_s3_bucket_it_made_aborts_incomplete_uploads_after_a_day(s3_kit: S3Kit) -> None:
    bucket = S3BundleStore(new_installation_id()).ensure_bucket()

    rules = s3_kit.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] for r in rules] == [1]


def test_s3_existing_bucket_in_another_region_is_used_and_signed_for_there(
    s3_kit: S3Kit, tmp_path: Path
) -> None:
    installation = new_installation_id()
    elsewhere = boto3.client(
        "s3",
        region_name="us-west-2",
        endpoint_url=s3_kit.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    elsewhere.create_bucket(
        Bucket=bucket_name(installation),
        CreateBucketConfiguration={"LocationConstraint": "us-west-2"},
    )
    store = S3BundleStore(installation)
    bundle = make_bundle(tmp_path)

    url = store.signed_url(store.put_bundle("web", bundle), 600)

    assert "%2Fus-west-2%2Fs3%2Faws4_request" in url  # X-Amz-Credential's region
    assert fetch(url) == bundle.path.read_bytes()


def test_s3_ensure_bucket_puts_back_its_tags_and_keeps_the_operators(s3_kit: S3Kit) -> None:
    installation = new_installation_id()
    bucket = S3BundleStore(installation).ensure_bucket()
    s3_kit.s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "ml"}]}
    )

    S3BundleStore(installation).ensure_bucket()

    tags = s3_kit.s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "team": "ml",
        "serve-managed-by": "spotserve",
        "serve-controller-id": installation,
    }


def test_s3_refused_credentials_are_a_credentials_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with moto_server(authenticate=True) as url:  # keys unknown to its IAM are refused
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")

        with pytest.raises(CredentialsError, match="s3:CreateBucket") as refused:
            S3BundleStore(new_installation_id()).ensure_bucket()

    assert refused.value.code == "InvalidAccessKeyId"


# GCP (gcp-storage-emulator)


def user_credentials(path: Path) -> Path:
    """An `authorized_user` ADC file, as `gcloud auth application-default login` writes."""
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "x.apps.googleusercontent.com",
                "client_secret": "secret",
                "refresh_token": "refresh",
            }
        )
    )
    return path


def test_gcs_user_credentials_cannot_sign_and_the_error_says_what_can(
    gcs_kit: GCSKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(user_credentials(tmp_path / "u")))
    store = gcs_kit.store(new_installation_id())
    key = store.put_bundle("web", make_bundle(tmp_path))

    with pytest.raises(CredentialsError, match="SERVE_GCP_SIGNING_SERVICE_ACCOUNT"):
        store.signed_url(key, 600)


def test_gcs_without_a_project_is_a_credentials_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(user_credentials(tmp_path / "u")))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT", raising=False)

    with pytest.raises(CredentialsError, match="GOOGLE_CLOUD_PROJECT"):
        GCSBundleStore(new_installation_id(), env={}).ensure_bucket()


def test_gcs_labels_and_privacy_are_put_back_on_an_existing_bucket(gcs_kit: GCSKit) -> None:
    installation = new_installation_id()
    made_by_hand = storage.Client(
        project="spotserve-test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": gcs_kit.endpoint},
    ).create_bucket(bucket_name(installation))

    gcs_kit.store(installation).ensure_bucket()

    assert gcs_kit.ownership(made_by_hand.name) == ("spotserve", installation)
    assert gcs_kit.private(made_by_hand.name)


# Azure (Azurite)


def test_azure_wrong_account_key_is_a_credentials_error(azure_kit: AzureKit) -> None:
    wrong = azure_kit.connection_string.replace(
        azurite_npm.KEY, base64.b64encode(b"k" * 64).decode()
    )

    with pytest.raises(CredentialsError, match="Storage Blob Data Contributor") as refused:
        AzureBlobStore(
            new_installation_id(), env={"AZURE_STORAGE_CONNECTION_STRING": wrong}
        ).ensure_bucket()

    assert refused.value.code == "AuthorizationFailure"


def test_azure_without_an_account_is_a_credentials_error() -> None:
    with pytest.raises(CredentialsError, match="SERVE_AZURE_STORAGE_ACCOUNT"):
        AzureBlobStore(new_installation_id(), env={}).ensure_bucket()


def test_azure_public_container_is_made_private_again(azure_kit: AzureKit) -> None:
    installation = new_installation_id()
    azure_kit.blobs.create_container(bucket_name(installation), public_access=PublicAccess.BLOB)

    container = azure_kit.store(installation).ensure_bucket()

    assert azure_kit.private(container)
    assert azure_kit.ownership(container) == ("spotserve", installation)


class EntraToken:
    """What Azurite's `--oauth basic` accepts as an Entra ID token: a JWT whose audience,
    issuer and times it checks, not its signature (Azurite's BlobTokenAuthenticator)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
            "nbf": now - 60,
            "iat": now - 60,
            "exp": now + 3600,
            "oid": "7b2b9a1e-6d5c-4f0e-9d1a-3c1f0e2d4b5a",
            "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
        }
        parts = [{"alg": "none", "typ": "JWT"}, claims]
        encoded = [base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=") for p in parts]
        return AccessToken(b".".join([*encoded, b"sig"]).decode(), now + 3600)


@pytest.fixture(scope="module")
def azurite_tls(
    azurite_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[azurite_npm.Azurite, Path]]:
    cert, key = self_signed(tmp_path_factory.mktemp("azurite-tls"))
    with azurite_npm.azurite(tls=(cert, key)) as running:
        yield running, cert


def test_azure_entra_id_signs_with_a_user_delegation_key(
    azurite_tls: tuple[azurite_npm.Azurite, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running, cert = azurite_tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # azure-core's requests trusts it
    env = {"AZURE_STORAGE_CONNECTION_STRING": f"BlobEndpoint={running.url};"}
    store = AzureBlobStore(new_installation_id(), env=env, credential=EntraToken())
    bundle = make_bundle(tmp_path)

    url = store.signed_url(store.put_bundle("web", bundle), 600)

    assert "skoid=" in url and "sig=" in url  # signed with a user delegation key
    trusting = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(url, context=trusting, timeout=30) as answer:
        assert answer.read() == bundle.path.read_bytes()
