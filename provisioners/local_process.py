"""Process groups that stand in for VMs: start one, ask whether it lives, take it away.

A replica is `bash replica.sh` in its own session (so its process group is the "VM"); the
group leader's death is the VM's death, and the rest of the group goes with it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

SCRIPT = """#!/usr/bin/env bash
# Written by the local provisioner: the same steps a VM's startup script takes.
set -e
cd {workdir}
echo "[serve] replica {replica_id} of {service}: setup" >&2
bash {setup}
echo "[serve] replica {replica_id} of {service}: run on port $SERVE_REPLICA_PORT" >&2
exec bash {run}
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def write_scripts(
    directory: Path, service: str, replica_id: int, setup: str | None, run: str, workdir: Path
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "setup.sh").write_text(setup or "true\n")
    (directory / "run.sh").write_text(run)
    script = directory / "replica.sh"
    script.write_text(
        SCRIPT.format(
            workdir=shlex.quote(str(workdir)),
            service=service,
            replica_id=replica_id,
            setup=shlex.quote(str(directory / "setup.sh")),
            run=shlex.quote(str(directory / "run.sh")),
        )
    )
    return script


def spawn(script: Path, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            ["bash", str(script)],
            cwd=script.parent,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def is_alive(pid: int, child: subprocess.Popen[bytes] | None = None) -> bool:
    """Whether the leader runs; a zombie counts as dead (and is reaped when it is ours)."""
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def kill_group(pgid: int, grace_seconds: float = 5.0) -> None:
    """SIGTERM the group, then SIGKILL what is left after the grace period."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not _group_exists(pgid):
            return
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def _group_exists(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False
