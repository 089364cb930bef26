"""Bad input through the CLI: one clear line, a non-zero exit, and nothing created."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ControllerProcess, Env, processes_of

GOOD = """
service:
  readiness_probe: /health
  replicas: 1
resources:
  ports: 8080
workdir: {workdir}
run: python3 app.py
"""


def write(tmp_path: Path, text: str, name: str = "svc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("{workdir}", str(Path("examples/hello").resolve())))
    return path


def nothing_started(env: Env) -> bool:
    return not processes_of(env.home) and not (env.home / "controller.json").exists()


def test_typo_key_fails_before_anything_starts(sqlite_env: Env, tmp_path: Path) -> None:
    out = sqlite_env.serve(
        "up", str(write(tmp_path, GOOD.replace("replicas:", "replica:"))), "-n", "x"
    )
    assert out.returncode != 0
    assert "service.replica: unknown key (did you mean 'replicas'?)" in out.stderr
    assert nothing_started(sqlite_env)


def test_wrong_type_fails_with_the_field_and_expectation(sqlite_env: Env, tmp_path: Path) -> None:
    out = sqlite_env.serve("up", str(write(tmp_path, GOOD.replace("8080", "eighty"))), "-n", "x")
    assert out.returncode != 0
    assert "resources.ports" in out.stderr and "'eighty'" in out.stderr
    assert nothing_started(sqlite_env)


def test_missing_file_is_named(sqlite_env: Env, tmp_path: Path) -> None:
    out = sqlite_env.serve("up", str(tmp_path / "missing.yaml"), "-n", "x")
    assert out.returncode != 0
    assert "no such file" in out.stderr and "missing.yaml" in out.stderr
    assert nothing_started(sqlite_env)


def test_missing_workdir_is_named(sqlite_env: Env, tmp_path: Path) -> None:
    text = GOOD.replace("workdir: {workdir}", "workdir: does/not/exist")
    out = sqlite_env.serve("up", str(write(tmp_path, text)), "-n", "x")
    assert out.returncode != 0 and "does/not/exist" in out.stderr
    assert nothing_started(sqlite_env)


@pytest.mark.slow
def test_duplicate_name_is_refused_and_the_first_service_is_untouched(
    controller: ControllerProcess, tmp_path: Path
) -> None:
    env = controller.env
    spec = write(tmp_path, GOOD)
    assert env.serve("up", str(spec), "-n", "dup", "--detach").returncode == 0
    again = env.serve("up", str(spec), "-n", "dup", "--detach")
    assert again.returncode != 0
    assert "already exists" in again.stderr and "serve update dup" in again.stderr
    services = httpx.get(f"{env.url}/api/v1/services").json()
    assert [(s["name"], s["version"]) for s in services] == [("dup", 1)]


def test_down_of_unknown_service_says_so(controller: ControllerProcess) -> None:
    out = controller.env.serve("down", "ghost")
    assert out.returncode != 0
    assert "no service named ghost" in out.stderr


def test_commands_without_a_controller_say_how_to_start_one(sqlite_env: Env) -> None:
    out = sqlite_env.serve("down", "ghost")
    assert out.returncode != 0 and "serve controller start" in out.stderr


def test_validate_prints_every_default(sqlite_env: Env, tmp_path: Path) -> None:
    out = sqlite_env.serve("validate", str(write(tmp_path, GOOD)), "--json")
    assert out.returncode == 0, out.stderr
    spec = json.loads(out.stdout)["spec"]
    policy = spec["service"]["replica_policy"]
    assert policy["min_replicas"] == policy["max_replicas"] == 1
    assert policy["target_qps_per_replica"] is None
    assert policy["upscale_delay_seconds"] == 300 and policy["downscale_delay_seconds"] == 1200
    assert spec["service"]["readiness_probe"]["initial_delay_seconds"] == 1200
    assert spec["service"]["readiness_probe"]["timeout_seconds"] == 15
    assert spec["service"]["load_balancing_policy"] == "least_load"
    assert spec["resources"]["use_spot"] is False


def test_validate_json_lists_issues_and_fails(sqlite_env: Env, tmp_path: Path) -> None:
    bad = write(
        tmp_path, GOOD.replace("replicas: 1", "replicas: 1\n  replica_policy: {min_replicas: 1}")
    )
    out = sqlite_env.serve("validate", str(bad), "--json")
    assert out.returncode == 1
    issues = json.loads(out.stdout)["issues"]
    assert issues[0]["path"] == "service.replicas"


def test_check_lists_every_cloud_and_what_to_do(sqlite_env: Env, tmp_path: Path) -> None:
    sqlite_env.extra.update(
        {
            "SERVE_CLOUDS": "local,aws",
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_ACCESS_KEY_ID": "",
            "AWS_SECRET_ACCESS_KEY": "",
            "AWS_EC2_METADATA_DISABLED": "true",
            "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "none.json"),
            "AZURE_SUBSCRIPTION_ID": "",
        }
    )
    out = sqlite_env.serve("check")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "yes" in lines["local"]
    assert "aws configure" in out.stdout or "AWS_ACCESS_KEY_ID" in out.stdout
    assert {"gcp", "azure", "kubernetes"} <= set(lines)
