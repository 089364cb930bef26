"""The boot script every VM adapter hands its cloud (EC2 user data, GCE startup-script,
Azure custom data, the Kubernetes container command), and the replica environment contract.

The boot script only starts the replica agent (`provisioners/agent/replica_agent.py`,
docs/cloud-replicas.md): it writes the agent (gzip + base64) and its boot config, then
`exec`s `python3` on it. The cloud sees the agent, its token, the bundle's signed URL and
digest, the agent port, the cloud's name, the service, replica id and port, and the
working directory: never an `envs` or `secrets` value, nor `setup` or `run`, which reach the
agent over its TLS port after boot.

On the VM (bash, as root under cloud-init, where HOME may be unset and becomes /root):

    agent directory   $SERVE_AGENT_DIR, else /opt/spotserve if writable, else
                      $HOME/.spotserve (0700): replica_agent.py, config.json (0600),
                      tls/ (key 0600), job.env (envs and secrets, 0600)
    working directory ~/serve_workdir, where `workdir` is unpacked and setup and run start
    replica log       $SERVE_REPLICA_LOG (default /var/log/spotserve-replica.log, else
                      <agent directory>/replica.log where that cannot be written): the
                      agent's output, the steps' and the program's, also copied to stdout
    agent address     0.0.0.0:<agent port>, or $SERVE_REPLICA_HOST (the fakes' boot mode
                      gives each instance its own loopback address, and its own HOME and
                      SERVE_AGENT_DIR so that instances on one machine share nothing)

Pure apart from reading the agent's source once.
"""

from __future__ import annotations

import ast
import base64
import functools
import gzip
import io
import json
import re
import threading
import tokenize
from collections.abc import Mapping
from pathlib import Path

from provisioners.base import TAG_AGENT_PORT, LaunchRequest
from provisioners.errors import InvalidRequest

DEFAULT_LOG = "/var/log/spotserve-replica.log"
WORKDIR = "~/serve_workdir"
AGENT_SOURCE = Path(__file__).parent / "agent" / "replica_agent.py"
SHIPPED_HEADER = "spotserve replica agent; documented in provisioners/agent/replica_agent.py"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECODE = (
    "python3 -c 'import base64,gzip,sys; "
    "sys.stdout.buffer.write(gzip.decompress(base64.b64decode(sys.stdin.read())))'"
)


def replica_environment(request: LaunchRequest) -> dict[str, str]:
    """The variables a replica's `setup` and `run` see: `envs`, then `secrets`, then
    `SERVE_SERVICE_NAME`, `SERVE_REPLICA_ID`, `SERVE_REPLICA_PORT` and `PORT` (later ones
    win). The agent builds the same on a VM; the local provisioner uses this one."""
    env = {str(k): str(v) for k, v in {**request.envs, **request.secrets}.items()}
    bad = sorted(name for name in env if not _ENV_NAME.fullmatch(name))
    if bad:
        raise InvalidRequest(
            f"envs/secrets names {bad} are not valid shell variable names; use letters, "
            "digits and underscores, not starting with a digit"
        )
    env |= {
        "SERVE_SERVICE_NAME": request.service,
        "SERVE_REPLICA_ID": str(request.replica_id),
        "SERVE_REPLICA_PORT": str(request.port),
        "PORT": str(request.port),
    }
    return env


def recorded_agent_port(tags: Mapping[str, str]) -> int | None:
    """The agent port an instance's tags or labels record (`TAG_AGENT_PORT`), or None."""
    text = tags.get(TAG_AGENT_PORT, "")
    return int(text) if text.isdigit() else None


def boot_config(
    request: LaunchRequest, bundle_url: str | None, *, cloud: str, agent_port: int
) -> dict[str, object]:
    """What the agent reads at boot; see the module docstring for what must never be in it."""
    if bundle_url and request.bundle is None:
        raise ValueError("a bundle URL needs the request's bundle (its digest)")
    return {
        "token": request.agent_token,
        "bundle_url": bundle_url or None,
        "bundle_digest": request.bundle.digest if bundle_url and request.bundle else None,
        "agent_port": agent_port,
        "cloud": cloud,
        "service": request.service,
        "replica_id": request.replica_id,
        "port": request.port,
        "workdir": WORKDIR,
    }


def build_boot_script(
    request: LaunchRequest, bundle_url: str | None, *, cloud: str, agent_port: int
) -> str:
    """A bash script that writes the agent and its boot config, then runs the agent.

    The same request gives the same bytes (the agent is compressed with a zero mtime)."""
    replica_environment(request)  # refuse bad names at launch, not on the VM
    config = json.dumps(
        boot_config(request, bundle_url, cloud=cloud, agent_port=agent_port), sort_keys=True
    )
    return "\n".join(
        [
            "#!/bin/bash",
            f"# spotserve replica {request.replica_id} of service {request.service}: starts"
            " the replica agent (docs/cloud-replicas.md)",
            'export HOME="${HOME:-/root}"',
            'dir="${SERVE_AGENT_DIR:-/opt/spotserve}"',
            '{ mkdir -p "$dir" && [ -w "$dir" ]; } 2>/dev/null || dir="$HOME/.spotserve"',
            f'log="${{SERVE_REPLICA_LOG:-{DEFAULT_LOG}}}"',
            'umask 077 && mkdir -p "$dir" && chmod 700 "$dir" || exit 1',
            '{ mkdir -p "$(dirname "$log")" && touch "$log"; } 2>/dev/null'
            ' || log="$dir/replica.log"',
            "command -v python3 >/dev/null"
            ' || { echo "[spotserve] python3 is required on the image" | tee -a "$log"; exit 1; }',
            f"{_DECODE} > \"$dir/replica_agent.py\" <<'SPOTSERVE_AGENT' || exit 1",
            _agent_payload() + "SPOTSERVE_AGENT",
            "cat > \"$dir/config.json\" <<'SPOTSERVE_CONFIG'",
            config,
            "SPOTSERVE_CONFIG",
            "umask 022",
            'exec python3 "$dir/replica_agent.py" --config "$dir/config.json" --log "$log"'
            ' > >(tee -a "$log") 2>&1',
            "",
        ]
    )


_PARSING = threading.Lock()
"""One `ast.parse` at a time: on CPython 3.11 two threads parsing at once can fail with
"AST constructor recursion depth mismatch" (python/cpython gh-106905), and launches build
boot scripts in parallel threads."""


@functools.cache
def shipped_agent() -> str:
    """The agent as the VM gets it: its own lines, verbatim, less docstrings, comments and
    blank lines (a docstring that is a whole body becomes `pass`). Dropping lines rather
    than re-printing the AST keeps the code valid on the VM's older Python (ast.unparse on
    3.12+ writes f-strings that 3.8 cannot read), and leaves room in EC2's 16 KiB of user
    data for a signed URL."""
    source = AGENT_SOURCE.read_text()
    lines = source.splitlines()
    edits: dict[int, str] = {}  # 0-based line index -> new text ("" drops the line)
    with _PARSING:
        tree = ast.parse(source)
    for body in _bodies(tree):
        texts = [s for s in body if _is_text(s)]
        for text in texts:
            for index in range(text.lineno - 1, (text.end_lineno or text.lineno)):
                edits[index] = ""
        if texts and len(texts) == len(body):
            edits[texts[0].lineno - 1] = " " * texts[0].col_offset + "pass"
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            edits.setdefault(row - 1, lines[row - 1])
            edits[row - 1] = edits[row - 1][:col].rstrip() if edits[row - 1] else ""
    kept = [edits.get(i, line) for i, line in enumerate(lines)]
    return "\n".join([f"# {SHIPPED_HEADER}", *(line for line in kept if line.strip())]) + "\n"


def _bodies(tree: ast.AST) -> list[list[ast.stmt]]:
    return [
        body for node in ast.walk(tree) if isinstance(body := getattr(node, "body", None), list)
    ]


def _is_text(statement: ast.stmt) -> bool:
    """A bare string statement (a docstring) alone on its lines: ruff-formatted code."""
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


@functools.cache
def _agent_payload() -> str:
    """The shipped agent, gzip-compressed (no timestamp) and base64 in 76-column lines."""
    compressed = gzip.compress(shipped_agent().encode(), compresslevel=9, mtime=0)
    return base64.encodebytes(compressed).decode()
