"""What a cloud fake's boot mode does for one instance: run its boot script as a VM would.

Shared by the GCP and Azure boot modes: the script runs with bash in the instance's own new
folder, in a process group of its own, with an explicit environment (nothing of the test's
leaks in): HOME, SERVE_AGENT_DIR and SERVE_REPLICA_LOG inside the folder, the instance's own
loopback address as SERVE_REPLICA_HOST, its metadata server as SERVE_METADATA_URL, and
`python3` on PATH as a VM image has it. Its console output goes to a file in the folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def run_boot_script(
    directory: Path,
    script: bytes,
    *,
    script_name: str,
    console_name: str,
    address: str,
    metadata_url: str,
    python: str,
) -> subprocess.Popen[bytes]:
    """Start `script` for one instance in `directory` (made here; its parent holds `bin/`)."""
    directory.mkdir(parents=True)
    (directory / "home").mkdir()
    bin_dir = directory.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    with contextlib.suppress(FileExistsError):
        (bin_dir / "python3").symlink_to(python)
    (directory / script_name).write_bytes(script)
    env = {
        "PATH": f"{bin_dir}:{SYSTEM_PATH}",
        "LANG": "C.UTF-8",
        "HOME": str(directory / "home"),
        "SERVE_AGENT_DIR": str(directory / "agent"),
        "SERVE_REPLICA_LOG": str(directory / "replica.log"),
        "SERVE_REPLICA_HOST": address,
        "SERVE_METADATA_URL": metadata_url,
    }
    with (directory / console_name).open("wb") as console:
        process = subprocess.Popen(
            ["/bin/bash", str(directory / script_name)],
            env=env,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (directory / "pid").write_text(f"{process.pid}\n")
    return process


def power_off(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the whole process group (the agent, setup, run, the app), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
