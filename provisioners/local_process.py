"""Process groups that stand in for VMs: start one, ask whether it lives, take it away.

A replica is `bash replica.sh` in its own session (so its process group is the "VM"); the
group leader's death is the VM's death, and the rest of the group goes with it.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
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
