"""Bundle upload and signed-URL download time on each object storage emulator.

    .venv/bin/python benchmarks/storage/bundle_transfer.py [--mb 100] [--runs 3] [--json]

For each store (S3 on moto's server, GCS on gcp-storage-emulator, Azure Blob on Azurite)
it uploads one random file of `--mb` MiB with `put_bundle` (into a new bucket each run: a
real upload, never the content-addressed skip), then downloads it through `signed_url` with
plain urllib and no credentials, as the replica agent does, and checks the bytes' SHA-256. Times are
wall-clock medians over `--runs`; they measure the emulators and the SDKs' transfer paths
on loopback, not a cloud's network.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from provisioners.azure_blob_store import AzureBlobStore  # noqa: E402
from provisioners.base import Bundle  # noqa: E402
from provisioners.gcs_store import GCSBundleStore  # noqa: E402
from provisioners.object_store import ObjectStore  # noqa: E402
from provisioners.s3_store import S3BundleStore  # noqa: E402
from tests.provisioners.object_store_kits import service_account_key  # noqa: E402
from tests.support import azurite  # noqa: E402
from tests.support.gcs_emulator import gcs_emulator  # noqa: E402
from tests.support.moto_server import moto_server  # noqa: E402

CHUNK = 1024 * 1024


@contextlib.contextmanager
def s3(scratch: Path) -> Iterator[Callable[[str], ObjectStore]]:
    with moto_server() as url:
        os.environ.update(
            AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
        )
        yield lambda installation: S3BundleStore(installation, env={})


@contextlib.contextmanager
def gcs(scratch: Path) -> Iterator[Callable[[str], ObjectStore]]:
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(service_account_key(scratch / "sa.json"))
    with gcs_emulator() as url:
        env = {"STORAGE_EMULATOR_HOST": url, "GOOGLE_CLOUD_PROJECT": "bench"}
        yield lambda installation: GCSBundleStore(installation, env=env)


@contextlib.contextmanager
def azure(scratch: Path) -> Iterator[Callable[[str], ObjectStore]]:
    why = azurite.install()
    if why:
        raise SystemExit(f"Azurite missing: {why}")
    with azurite.azurite() as running:
        env = {"AZURE_STORAGE_CONNECTION_STRING": running.connection_string}
        yield lambda installation: AzureBlobStore(installation, env=env)


def random_bundle(path: Path, mib: int) -> Bundle:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(mib):
            block = os.urandom(CHUNK)
            digest.update(block)
            out.write(block)
    return Bundle(digest=digest.hexdigest(), path=path, size=mib * CHUNK)


def download_digest(url: str) -> str:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=300) as answer:
        while block := answer.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def measure(make: Callable[[str], ObjectStore], bundle: Bundle, run: int) -> tuple[float, float]:
    store = make(f"bench-{run}-{os.getpid()}")
    store.ensure_bucket()
    started = time.perf_counter()
    key = store.put_bundle("bench", bundle)
    uploaded = time.perf_counter()
    got = download_digest(store.signed_url(key, 600))
    downloaded = time.perf_counter()
    if got != bundle.digest:
        raise SystemExit(f"{store.cloud}: downloaded bytes differ from the bundle")
    return uploaded - started, downloaded - uploaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        bundle = random_bundle(scratch / "bundle.tar.gz", args.mb)
        for name, emulator in (
            ("s3/moto", s3),
            ("gcs/gcp-storage-emulator", gcs),
            ("azure/azurite", azure),
        ):
            with emulator(scratch) as make:
                times = [measure(make, bundle, run) for run in range(args.runs)]
            up = statistics.median(t[0] for t in times)
            down = statistics.median(t[1] for t in times)
            results[name] = {"upload_s": round(up, 2), "download_s": round(down, 2)}
            if not args.json:
                print(
                    f"{name:26} upload {up:6.2f} s ({args.mb / up:6.1f} MiB/s)   "
                    f"signed GET {down:6.2f} s ({args.mb / down:6.1f} MiB/s)"
                )
    if args.json:
        print(json.dumps({"mib": args.mb, "runs": args.runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
