"""Bucket and key names every cloud accepts (pure functions)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from provisioners.azure_blob_store import AzureBlobStore
from provisioners.base import Bundle
from provisioners.errors import InvalidRequest
from provisioners.object_store import bucket_name, bundle_key, service_prefix

VALID = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
"""S3 and GCS bucket names and Azure container names, all at once."""


def test_an_ordinary_installation_id_is_used_as_it_is() -> None:
    assert bucket_name("ctrl-1a2b3c4d") == "spotserve-ctrl-1a2b3c4d"


@pytest.mark.parametrize(
    "installation", ["Ctrl_1A2B", "ctrl--x", "ctrl.x", "x" * 80, "ctrl-x-", "ünïcode"]
)
def test_any_installation_id_becomes_a_valid_name(installation: str) -> None:
    assert VALID.match(bucket_name(installation)), bucket_name(installation)


def test_ids_that_clean_up_alike_still_get_their_own_buckets() -> None:
    assert bucket_name("Ctrl_A") != bucket_name("ctrl-a") != bucket_name("CTRL.A")
    assert bucket_name("x" * 80) != bucket_name("x" * 81)


def test_a_service_prefix_ends_with_a_slash_so_web_is_not_web2() -> None:
    assert service_prefix("web") == "bundles/web/"


@pytest.mark.parametrize("service", ["", "a/b"])
def test_a_service_name_that_cannot_be_a_prefix_is_refused(service: str) -> None:
    with pytest.raises(InvalidRequest):
        service_prefix(service)


def test_a_bundle_key_needs_a_sha256_digest() -> None:
    with pytest.raises(InvalidRequest):
        bundle_key("web", Bundle(digest="../../etc", path=Path("x"), size=1))


def test_azure_development_storage_shortcut_names_azurites_account() -> None:
    env = {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}

    assert AzureBlobStore("ctrl-x", env=env).account == "devstoreaccount1"
