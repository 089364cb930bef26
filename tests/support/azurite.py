"""Azurite, Microsoft's Blob Storage emulator, from npm: installed on demand, run as a process.

`python -m tests.support.azurite` installs it (the Makefile's env target does) into
`.cache/emulators` (git-ignored). The Blob service is started in memory, on a free port, with
telemetry off (it would otherwise try to reach Application Insights). Its account is the
documented development one ("Use the Azurite emulator": devstoreaccount1 and its key).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from provisioners.azure_blob_store import DEVELOPMENT_STORAGE
from tests.support.processes import REPO, free_port, wait_until

VERSION = "3.37.0"
"""3.37 is the first Azurite that checks a user delegation SAS the way azure-storage-blob
12.31 signs it (service version 2026-10-06)."""
PREFIX = REPO / ".cache" / "emulators"
BINARY = PREFIX / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = DEVELOPMENT_STORAGE["AccountName"]
KEY = DEVELOPMENT_STORAGE["AccountKey"]
INSTALL_HINT = (
    f"install it with `npm install --prefix {PREFIX} azurite@{VERSION}` "
    "(or `python -m tests.support.azurite`; `make env` does it)"
)


def installed_version() -> str | None:
    package = PREFIX / "node_modules" / "azurite" / "package.json"
    if not BINARY.exists() or not package.exists():
        return None
    return str(json.loads(package.read_text()).get("version"))


def install() -> str | None:
    """Install the pinned Azurite unless it is there; None on success, else why not."""
    if installed_version() == VERSION:
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not on PATH"
    PREFIX.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", f"azurite@{VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        return f"npm install azurite@{VERSION} failed: {done.stderr.strip()[-500:]}"
    return None


@dataclass(frozen=True)
class Azurite:
    """A running Azurite Blob service."""

    url: str
    """The account's blob endpoint, `http(s)://127.0.0.1:PORT/devstoreaccount1`."""

    @property
    def connection_string(self) -> str:
        scheme = self.url.split(":", 1)[0]
        return (
            f"DefaultEndpointsProtocol={scheme};AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.url};"
        )


@contextmanager
def azurite(*, tls: tuple[Path, Path] | None = None) -> Iterator[Azurite]:
    """Run Azurite's Blob service; with `tls=(cert, key)` it serves HTTPS and takes Entra ID
    bearer tokens too (`--oauth basic`: it checks a token's audience, issuer and times, not
    its signature)."""
    port = free_port()
    args = [
        str(BINARY),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--silent",
    ]  # fmt: skip
    if tls is not None:
        args += ["--oauth", "basic", "--cert", str(tls[0]), "--key", str(tls[1])]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _listening(port) or proc.poll() is not None, "Azurite to listen", 30)
        if proc.poll() is not None:
            raise RuntimeError(
                f"Azurite exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        scheme = "https" if tls else "http"
        yield Azurite(f"{scheme}://127.0.0.1:{port}/{ACCOUNT}")
    finally:
        proc.kill()
        proc.wait()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    why = install()
    print(why or f"azurite {VERSION} is in {PREFIX}")
    sys.exit(1 if why and os.environ.get("SERVE_TEST_REQUIRE_EMULATORS") == "1" else 0)
