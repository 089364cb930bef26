"""How long a replica agent takes from its boot script's start to `waiting_for_job` with a
bundle of a given size over file://, and how big the boot script is.

    .venv/bin/python benchmarks/agent/boot_seconds.py [--megabytes 10] [--runs 3]

The bundle is the given size of incompressible bytes spread over 100 files (model-like
data, the worst case for gzip) plus a few small source files. Each run boots a fresh agent
through the real boot script (tests/agent/harness.py) and polls its status every 10 ms;
"TLS up" is the first hello that succeeds (includes bash, python3 start-up and openssl's
RSA key), "waiting" is the first status of waiting_for_job (fetch, digest, unpack too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from provisioners.base import Bundle  # noqa: E402
from replica_manager.agent_client import AgentPhase, AgentUnreachable  # noqa: E402
from tests.agent.bundles import write_bundle  # noqa: E402
from tests.agent.harness import boot, launch_request  # noqa: E402

SIGNED_URL = (
    "https://spotserve-0123abcd.s3.us-east-1.amazonaws.com/chat/"
    + "f" * 64
    + (
        ".tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20250101%2F"
        "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600"
        "&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "0" * 64
    )
)


def one_boot(root: Path, bundle_path: Path, digest: str) -> tuple[float, float]:
    request = launch_request(Bundle(digest, bundle_path, bundle_path.stat().st_size))
    started = time.monotonic()
    agent = boot(root, request, bundle_path.as_uri())
    client = agent.client()
    try:
        while True:
            try:
                client.hello()
                break
            except AgentUnreachable:
                time.sleep(0.01)
        tls_up = time.monotonic() - started
        while client.status().phase != AgentPhase.WAITING_FOR_JOB:
            time.sleep(0.01)
        return tls_up, time.monotonic() - started
    finally:
        agent.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from provisioners.startup_script import build_boot_script

    request = launch_request(Bundle("ab" * 32, Path("/x"), 1))
    for url in (None, SIGNED_URL):
        size = len(build_boot_script(request, url, cloud="aws", agent_port=46592).encode())
        what = "no bundle" if url is None else f"{len(url)}-char signed URL"
        print(f"boot script bytes ({what}): {size}")
    with tempfile.TemporaryDirectory() as tmp:
        each = int(args.megabytes * 1e6 / 100)
        files = {f"weights/part-{i:03}.bin": os.urandom(each) for i in range(100)}
        files.update({"app.py": b"print('serve')\n" * 50, "requirements.txt": b"vllm\n"})
        bundle = write_bundle(Path(tmp) / "bundle.tar.gz", workdir=files)
        print(f"bundle: {bundle.path.stat().st_size / 1e6:.1f} MB, {len(files)} files")
        runs = range(args.runs)
        times = [one_boot(Path(tmp) / f"run{i}", bundle.path, bundle.digest) for i in runs]
        columns = {"TLS up": [t[0] for t in times], "waiting_for_job": [t[1] for t in times]}
        for label, values in columns.items():
            shown = ", ".join(f"{v:.2f}" for v in values)
            print(f"{label}: median {statistics.median(values):.2f} s ({shown})")


if __name__ == "__main__":
    main()
