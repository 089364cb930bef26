"""The controller's bundles on disk, `SERVE_HOME/bundles/<sha256>.tar.gz`.

Content-addressed, so a bundle is written once and never changes: an upload is streamed to
a temporary file, hashed as it arrives, and renamed into place only if its hash is the name
it was sent under. Bundles no version refers to any more are removed by `prune`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from provisioners.base import Bundle

DIGEST = re.compile(r"^[0-9a-f]{64}$")
PRUNE_AFTER_SECONDS = 3600.0
"""An unreferenced bundle younger than this may belong to a `serve up` in progress."""


class BundleRejected(ValueError):
    def __init__(self, status: int, error: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


class BundleStore:
    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.max_bytes = max_bytes

    def path(self, digest: str) -> Path:
        if not DIGEST.match(digest):
            raise BundleRejected(422, "bad_digest", f"{digest!r} is not a SHA-256 hex digest")
        return self.root / f"{digest}.tar.gz"

    def get(self, digest: str) -> Bundle | None:
        path = self.path(digest)
        return Bundle(digest, path, path.stat().st_size) if path.is_file() else None

    async def receive(self, digest: str, chunks: AsyncIterator[bytes]) -> Bundle:
        """Store an upload under `digest`, refusing it if it is larger than the limit or
        its bytes do not hash to `digest`."""
        final = self.path(digest)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        tmp = Path(name)
        hasher, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise BundleRejected(
                            413,
                            "too_large",
                            f"bundle over {self.max_bytes} bytes (SERVE_MAX_BUNDLE_BYTES)",
                        )
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != digest:
                raise BundleRejected(
                    422,
                    "digest_mismatch",
                    f"the upload hashes to {hasher.hexdigest()}, not {digest}",
                )
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return Bundle(digest, final, size)

    def prune(self, referenced: Iterable[str], now: float | None = None) -> int:
        """Delete bundles no version refers to (older than `PRUNE_AFTER_SECONDS`)."""
        keep = set(referenced)
        now = time.time() if now is None else now
        removed = 0
        for path in self.root.glob("*.tar.gz"):
            digest = path.name.removesuffix(".tar.gz")
            if digest in keep or now - path.stat().st_mtime < PRUNE_AFTER_SECONDS:
                continue
            path.unlink(missing_ok=True)
            removed += 1
        return removed
