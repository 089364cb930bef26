"""The boot script as the cloud sees it: small enough for EC2 user data, and holding the
agent and its boot config but no envs or secrets value and no setup or run. (What it does
on a VM is tested by running it: tests/agent.)"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from policies.types import Location, Offer
from provisioners.base import Bundle, LaunchRequest
from provisioners.errors import InvalidRequest
from provisioners.startup_script import (
    AGENT_SOURCE,
    build_boot_script,
    replica_environment,
    shipped_agent,
)

EC2_USER_DATA_LIMIT = 16 * 1024
SIGNED_URL = (
    "https://spotserve-inst.s3.amazonaws.com/chat/abc.tar.gz?"
    + "X-Amz-Security-Token="
    + "t" * 1500
)
DIGEST = "ab" * 32


def launch_request(**overrides: object) -> LaunchRequest:
    fields: dict[str, object] = {
        "service": "chat",
        "replica_id": 3,
        "launch_token": "tok",
        "controller_id": "ctrl",
        "offer": Offer(Location("aws", "us-east-1", "us-east-1a"), 1.0, 0.3, "g5.xlarge"),
        "spot": True,
        "port": 8081,
        "run": "python3 serve.py --distinctive-run-9f1e",
        "setup": "pip install distinctive-setup-4c2a",
        "envs": {"MODEL": "distinctive-env-77d0"},
        "secrets": {"HF_TOKEN": "distinctive-secret-e51b"},
        "bundle": Bundle(DIGEST, Path("/bundles/x.tar.gz"), 123),
        "agent_token": "agent-token-" + "k" * 32,
    }
    fields.update(overrides)
    return LaunchRequest(**fields)  # type: ignore[arg-type]


def script_for(request: LaunchRequest, url: str | None = SIGNED_URL) -> str:
    return build_boot_script(request, url, cloud="aws", agent_port=46592)


def boot_config(script: str) -> dict[str, object]:
    match = re.search(r"<<'SPOTSERVE_CONFIG'\n(.*)\nSPOTSERVE_CONFIG\n", script)
    assert match, "the script writes its config from a quoted here-document"
    return dict(json.loads(match.group(1)))


def test_fits_in_ec2_user_data_with_a_long_signed_url() -> None:
    assert len(script_for(launch_request()).encode()) < EC2_USER_DATA_LIMIT - 1024


def test_holds_no_envs_or_secrets_value_and_no_setup_or_run() -> None:
    script = script_for(launch_request())
    for text in ("distinctive-env", "distinctive-secret", "distinctive-setup", "distinctive-run"):
        assert text not in script


def test_the_boot_config_holds_only_what_the_agent_needs_to_boot() -> None:
    config = boot_config(script_for(launch_request()))
    assert config == {
        "token": "agent-token-" + "k" * 32,
        "bundle_url": SIGNED_URL,
        "bundle_digest": DIGEST,
        "agent_port": 46592,
        "cloud": "aws",
        "service": "chat",
        "replica_id": 3,
        "port": 8081,
        "workdir": "~/serve_workdir",
    }


def test_without_a_bundle_url_there_is_nothing_to_fetch() -> None:
    config = boot_config(script_for(launch_request(), url=None))
    assert config["bundle_url"] is None and config["bundle_digest"] is None


def test_a_bundle_url_needs_the_requests_bundle() -> None:
    with pytest.raises(ValueError, match="digest"):
        script_for(launch_request(bundle=None))


def test_the_same_request_gives_the_same_bytes() -> None:
    assert script_for(launch_request()) == script_for(launch_request())


def test_replica_environment_has_envs_secrets_and_ours_win() -> None:
    env = replica_environment(launch_request(envs={"MODEL": "m", "PORT": "1"}))
    assert env["MODEL"] == "m" and env["HF_TOKEN"] == "distinctive-secret-e51b"
    assert env["SERVE_SERVICE_NAME"] == "chat" and env["SERVE_REPLICA_ID"] == "3"
    assert env["SERVE_REPLICA_PORT"] == env["PORT"] == "8081"


@pytest.mark.parametrize("field", ["envs", "secrets"])
def test_a_name_that_is_not_a_shell_name_is_an_invalid_request(field: str) -> None:
    with pytest.raises(InvalidRequest, match="not valid shell variable names"):
        script_for(launch_request(**{field: {"BAD-NAME": "x"}}))


def test_the_shipped_agent_is_the_sources_program_less_its_docstrings() -> None:
    source = ast.parse(AGENT_SOURCE.read_text())
    for node in ast.walk(source):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [
                s
                for s in body
                if not (
                    isinstance(s, ast.Expr)
                    and isinstance(s.value, ast.Constant)
                    and isinstance(s.value.value, str)
                )
            ]
            node.body = kept or [ast.Pass()]  # type: ignore[attr-defined]
    assert ast.dump(ast.parse(shipped_agent())) == ast.dump(source)


def test_the_shipped_agent_parses_as_python_3_8() -> None:
    """The VM's Python may be old; ruff also holds the source to py38 (pyproject.toml)."""
    ast.parse(shipped_agent(), feature_version=(3, 8))
