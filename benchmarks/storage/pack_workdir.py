"""Packing and shipping a workdir to the controller: how long `serve up` spends before the
service exists.

    .venv/bin/python benchmarks/storage/pack_workdir.py [--mb 100] [--files 200] [--json]

Builds a workdir of `--files` files totalling `--mb` MiB (half random bytes, which do not
compress, half text, which does), then times, each as `serve up` does it: walking and
packing it into the content-addressed bundle (`controller.bundle.pack`), packing it again
unchanged (the digest is the same; the upload is skipped), and uploading it to a real
controller process over HTTP (`PUT /api/v1/bundles/<digest>`). The bundle's further trip
to a cloud's object store is `benchmarks/storage/bundle_transfer.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from controller.bundle import pack  # noqa: E402
from tests.support.processes import ControllerProcess, Env  # noqa: E402


def make_workdir(root: Path, total_mb: int, files: int) -> None:
    per_file = total_mb * 1024 * 1024 // files
    line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    for i in range(files):
        path = root / f"pkg{i % 10}" / f"file{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i % 2:
            path.write_bytes(os.urandom(per_file))
        else:
            path.write_bytes((line * (per_file // len(line) + 1))[:per_file])


def measure(total_mb: int, files: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        workdir = root / "workdir"
        make_workdir(workdir, total_mb, files)
        began = time.perf_counter()
        bundle = pack(workdir, {}, root / "out", max_bytes=10 * total_mb * 1024 * 1024)
        pack_seconds = time.perf_counter() - began
        assert bundle is not None
        began = time.perf_counter()
        again = pack(workdir, {}, root / "out2", max_bytes=10 * total_mb * 1024 * 1024)
        repack_seconds = time.perf_counter() - began
        assert again is not None and again.digest == bundle.digest
        env = Env(home=root / "home", database_url=f"sqlite:///{root / 'serve.db'}")
        proc = ControllerProcess(env).start()
        try:
            began = time.perf_counter()
            with bundle.path.open("rb") as body:
                resp = httpx.put(
                    f"{env.url}/api/v1/bundles/{bundle.digest}",
                    content=body,
                    headers=env.auth(),
                    timeout=600,
                )
            upload_seconds = time.perf_counter() - began
            assert resp.status_code == 201, resp.text
        finally:
            proc.kill()
    return {
        "workdir_mb": total_mb,
        "files": files,
        "bundle_mb": round(bundle.size / (1024 * 1024), 1),
        "pack_seconds": round(pack_seconds, 2),
        "repack_seconds": round(repack_seconds, 2),
        "upload_to_controller_seconds": round(upload_seconds, 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=100)
    p.add_argument("--files", type=int, default=200)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = measure(args.mb, args.files)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
