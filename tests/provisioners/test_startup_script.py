"""The boot script, run by a real bash as a VM would run it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from policies.types import Location, Offer
from provisioners.base import LaunchRequest
from provisioners.errors import InvalidRequest
from provisioners.startup_script import build_startup_script


def launch_request(tmp_path: Path, **overrides: object) -> LaunchRequest:
    fields: dict[str, object] = {
        "service": "chat",
        "replica_id": 3,
        "launch_token": "tok",
        "controller_id": "ctrl",
        "offer": Offer(Location("aws", "us-east-1", "us-east-1a"), 1.0, 0.3, "g5.xlarge"),
        "spot": True,
        "port": 8081,
        "run": f"env > {tmp_path}/run.env; pwd > {tmp_path}/run.pwd",
        "setup": f"echo setup-ran > {tmp_path}/setup.out",
        "envs": {"MODEL": "tiny-llama", "HF_TOKEN": "secret"},
    }
    fields.update(overrides)
    return LaunchRequest(**fields)  # type: ignore[arg-type]


def boot(tmp_path: Path, request: LaunchRequest) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "boot.sh"
    script.write_text(build_startup_script(request))
    return subprocess.run(
        ["bash", str(script)],
        env={"PATH": "/usr/bin:/bin", "SERVE_REPLICA_LOG": str(tmp_path / "replica.log")},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
        check=False,
    )


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_run_sees_every_env_item_and_the_serve_variables(tmp_path: Path) -> None:
    boot(tmp_path, launch_request(tmp_path))
    env = read_env(tmp_path / "run.env")
    assert env["MODEL"] == "tiny-llama" and env["HF_TOKEN"] == "secret"
    assert env["SERVE_SERVICE_NAME"] == "chat"
    assert env["SERVE_REPLICA_ID"] == "3"
    assert env["SERVE_REPLICA_PORT"] == env["PORT"] == "8081"


def test_setup_runs_before_run_inside_the_workdir(tmp_path: Path) -> None:
    workdir = tmp_path / "work dir"
    request = launch_request(
        tmp_path,
        workdir=str(workdir),
        setup="echo ready > marker",
        run=f"cat marker > {tmp_path}/seen; pwd > {tmp_path}/run.pwd",
    )
    boot(tmp_path, request)
    assert (tmp_path / "seen").read_text().strip() == "ready"
    assert (tmp_path / "run.pwd").read_text().strip() == str(workdir)


def test_failed_setup_stops_before_run(tmp_path: Path) -> None:
    request = launch_request(tmp_path, setup="false\necho after-failure > never")
    result = boot(tmp_path, request)
    assert result.returncode != 0
    assert not (tmp_path / "run.env").exists()
    assert not (tmp_path / "never").exists()


def test_run_exit_status_is_the_scripts(tmp_path: Path) -> None:
    assert boot(tmp_path, launch_request(tmp_path, run="exit 7")).returncode == 7


def test_env_values_cannot_run_commands(tmp_path: Path) -> None:
    hostile = f"$(touch {tmp_path}/pwned)'; touch {tmp_path}/pwned2; echo '`id`"
    boot(tmp_path, launch_request(tmp_path, envs={"EVIL": hostile}))
    assert read_env(tmp_path / "run.env")["EVIL"] == hostile
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_replica_output_is_appended_to_the_replica_log(tmp_path: Path) -> None:
    boot(tmp_path, launch_request(tmp_path, run="echo serving-now"))
    log = tmp_path / "replica.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "serving-now" not in _text(log):
        time.sleep(0.05)
    assert "serving-now" in _text(log)


def test_env_name_that_is_not_a_shell_name_is_an_invalid_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="not valid shell variable names"):
        build_startup_script(launch_request(tmp_path, envs={"BAD-NAME": "x"}))


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""
