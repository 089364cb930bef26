"""Object storage emulators, one process each per test session, and a kit per cloud.

Azurite comes from npm: installed on first use when missing. Where it cannot be installed
(no npm, no network) its tests skip saying how to install it, unless
`SERVE_TEST_REQUIRE_EMULATORS=1` (set by `.ci/run`), which makes them fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provisioners.object_store_kits import AzureKit, GCSKit, Kit, S3Kit, service_account_key
from tests.support import azurite as azurite_npm
from tests.support.gcs_emulator import gcs_emulator
from tests.support.moto_server import moto_server


def emulators_required() -> bool:
    return os.environ.get("SERVE_TEST_REQUIRE_EMULATORS") == "1"


@pytest.fixture(scope="session")
def moto_s3_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def gcs_url() -> Iterator[str]:
    with gcs_emulator() as url:
        yield url


@pytest.fixture(scope="session")
def azurite_installed() -> None:
    why = azurite_npm.install()
    if why is None:
        return
    message = f"Azurite is not installed ({why}); {azurite_npm.INSTALL_HINT}"
    if emulators_required():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def azurite(azurite_installed: None) -> Iterator[azurite_npm.Azurite]:
    with azurite_npm.azurite() as running:
        yield running


@pytest.fixture
def s3_kit(moto_s3_url: str, monkeypatch: pytest.MonkeyPatch) -> S3Kit:
    kit = S3Kit(moto_s3_url, monkeypatch)
    for name, value in kit.env.items():
        monkeypatch.setenv(name, value)  # boto3 reads its endpoint and keys from here
    return kit


@pytest.fixture
def gcs_kit(gcs_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GCSKit:
    kit = GCSKit(gcs_url, service_account_key(tmp_path / "key.json"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(kit.key_file))
    return kit


@pytest.fixture
def azure_kit(azurite: azurite_npm.Azurite) -> AzureKit:
    return AzureKit(azurite.connection_string, azurite.url)


@pytest.fixture(params=["aws", "gcp", "azure"])
def kit(request: pytest.FixtureRequest) -> Kit:
    """The same contract test on S3 (moto), GCS (gcp-storage-emulator) and Azure (Azurite)."""
    name = {"aws": "s3_kit", "gcp": "gcs_kit", "azure": "azure_kit"}[request.param]
    found: Kit = request.getfixturevalue(name)
    return found
