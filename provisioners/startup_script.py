"""The boot script every adapter hands its cloud: EC2 user data, GCE startup-script, Azure
custom data, and the Kubernetes container command.

Invariant (the replica environment contract): before `setup` and then `run` execute, in the
request's `workdir` if given, the environment holds every `envs` item plus
`SERVE_SERVICE_NAME`, `SERVE_REPLICA_ID`, `SERVE_REPLICA_PORT` and `PORT` (both equal to the
request's port; ours win over an `envs` item of the same name). Every value is shell-quoted,
so no value can run a command. `setup` stops at its first failing command and then `run`
never starts; `run` replaces the script's shell, so its exit status is the replica's.

Output goes to stdout (what `kubectl logs` and the clouds' serial consoles show) and is
appended to `$SERVE_REPLICA_LOG` (default `/var/log/spotserve-replica.log`).

Pure: no I/O.
"""

from __future__ import annotations

import re
import shlex

from provisioners.base import LaunchRequest
from provisioners.errors import InvalidRequest

DEFAULT_LOG = "/var/log/spotserve-replica.log"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def replica_environment(request: LaunchRequest) -> dict[str, str]:
    """The variables a replica's `setup` and `run` see."""
    env = {str(name): str(value) for name, value in request.envs.items()}
    bad = sorted(name for name in env if not _ENV_NAME.fullmatch(name))
    if bad:
        raise InvalidRequest(
            f"envs names {bad} are not valid shell variable names; use letters, digits and "
            "underscores, not starting with a digit"
        )
    env |= {
        "SERVE_SERVICE_NAME": request.service,
        "SERVE_REPLICA_ID": str(request.replica_id),
        "SERVE_REPLICA_PORT": str(request.port),
        "PORT": str(request.port),
    }
    return env


def build_startup_script(request: LaunchRequest) -> str:
    """A bash script that exports the replica environment, then runs `setup` and `run`."""
    lines = [
        "#!/bin/bash",
        f"# spotserve replica {request.replica_id} of service {request.service}",
        f'exec > >(tee -a "${{SERVE_REPLICA_LOG:-{DEFAULT_LOG}}}") 2>&1',
        'export HOME="${HOME:-/root}"',
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in replica_environment(request).items()]
    if request.workdir:
        workdir = shlex.quote(request.workdir)
        lines.append(f"mkdir -p {workdir} && cd {workdir} || exit 1")
    if request.setup and request.setup.strip():
        lines += [
            f"if ! bash -e -c {shlex.quote(request.setup)}; then",
            '  echo "spotserve: setup failed; run is not started" >&2',
            "  exit 1",
            "fi",
        ]
    lines.append(f"exec bash -c {shlex.quote(request.run)}")
    return "\n".join(lines) + "\n"
