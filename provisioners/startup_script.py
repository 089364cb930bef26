"""The boot script every VM adapter hands its cloud (user data, startup-script, custom data).

Invariant (the replica environment contract): before `setup` and then `run` execute, in the
request's `workdir` if given, the environment holds every `envs` item plus
`SERVE_SERVICE_NAME`, `SERVE_REPLICA_ID`, `SERVE_REPLICA_PORT` and `PORT` (both = the
request's port). Values are shell-quoted, so an env value can never inject commands.

Pure: no I/O. The same text boots a replica on AWS, GCP and Azure; each cloud runs it as
root once at first boot (cloud-init for AWS/Azure, google-startup-scripts for GCP).
"""

from __future__ import annotations

import re
import shlex

from provisioners.base import LaunchRequest
from provisioners.errors import InvalidRequest

LOG_PATH = "/var/log/spotserve-replica.log"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def replica_environment(request: LaunchRequest) -> dict[str, str]:
    """The variables a replica sees; ours win over `envs` items of the same name."""
    env = {str(k): str(v) for k, v in request.envs.items()}
    bad = sorted(k for k in env if not _ENV_NAME.match(k))
    if bad:
        raise InvalidRequest(
            f"envs names {bad} are not valid shell variable names; use letters, digits and "
            "underscores, not starting with a digit"
        )
    env.update(
        SERVE_SERVICE_NAME=request.service,
        SERVE_REPLICA_ID=str(request.replica_id),
        SERVE_REPLICA_PORT=str(request.port),
        PORT=str(request.port),
    )
    return env


def build_startup_script(request: LaunchRequest) -> str:
    """A bash script that exports the replica environment, then runs `setup` and `run`."""
    lines = [
        "#!/bin/bash",
        "# spotserve replica bootstrap",
        "set -uo pipefail",
        f"exec >>{LOG_PATH} 2>&1",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in replica_environment(request).items()]
    if request.workdir:
        workdir = shlex.quote(request.workdir)
        lines.append(f"mkdir -p {workdir} && cd {workdir}")
    if request.setup:
        lines += [
            "(",
            "set -e",
            request.setup.rstrip("\n"),
            ') || { echo "setup failed"; exit 1; }',
        ]
    lines += ["(", request.run.rstrip("\n"), ")"]
    return "\n".join(lines) + "\n"
