"""`serve up | update | validate` resource flags, with SkyPilot's precedence: the command
line over the YAML, in every `any_of`/`ordered` candidate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ControllerProcess, Env, processes_of, wait_until

ANY_OF = """
service:
  readiness_probe: /health
  replicas: 1
resources:
  ports: 8080
  accelerators: {L4: 1}
  cpus: 4+
  any_of:
    - infra: gcp/us-central1
      accelerators: A100:1
    - cloud: aws
      region: us-east-1
      zone: us-east-1a
      use_spot: true
run: python3 app.py
"""

HELLO = """
service:
  readiness_probe: {path: /health, initial_delay_seconds: 60}
  replicas: 1
resources:
  ports: 8080
workdir: {workdir}
run: python3 app.py
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "svc.yaml"
    path.write_text(text.replace("{workdir}", str(Path("examples/hello").resolve())))
    return path


def validated(env: Env, spec: Path, *flags: str) -> dict[str, Any]:
    out = env.serve("validate", str(spec), "--json", *flags)
    assert out.returncode == 0, out.stdout + out.stderr
    return dict(json.loads(out.stdout)["spec"]["resources"])


def candidates(resources: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys = ("cloud", "region", "zone", "accelerators", "use_spot", "cpus")
    return [tuple(c[k] for k in keys) for c in resources["any_of"]]


def test_validate_shows_the_flags_laid_over_every_any_of_candidate(
    sqlite_env: Env, tmp_path: Path
) -> None:
    spec = write(tmp_path, ANY_OF)
    assert candidates(validated(sqlite_env, spec)) == [
        ("gcp", "us-central1", None, {"A100": 1}, None, None),
        ("aws", "us-east-1", "us-east-1a", None, True, None),
    ]
    res = validated(
        sqlite_env, spec, "--infra", "aws/us-west-2", "--gpus", "H100:8", "--no-use-spot"
    )
    assert (res["cloud"], res["region"], res["zone"]) == ("aws", "us-west-2", None)
    assert res["accelerators"] == {"H100": 8} and res["use_spot"] is False
    assert candidates(res) == [("aws", "us-west-2", None, {"H100": 8}, False, None)] * 2


def test_a_single_location_flag_keeps_the_rest_of_each_candidate(
    sqlite_env: Env, tmp_path: Path
) -> None:
    res = validated(sqlite_env, write(tmp_path, ANY_OF), "--zone", "z1", "--cpus", "8")
    assert candidates(res) == [
        ("gcp", "us-central1", "z1", {"A100": 1}, None, "8"),
        ("aws", "us-east-1", "z1", None, True, "8"),
    ]


def test_infra_beside_cloud_is_refused(sqlite_env: Env, tmp_path: Path) -> None:
    out = sqlite_env.serve(
        "validate", str(write(tmp_path, ANY_OF)), "--infra", "aws", "--cloud", "gcp"
    )
    assert out.returncode == 1
    assert "--infra cannot be combined with --cloud" in out.stderr


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--gpus", "A100:lots"], "set by --gpus A100:lots"),
        (["--cloud", "gpc"], "unknown cloud 'gpc', set by --cloud gpc"),
        (["--memory", "16GB"], "set by --memory 16GB"),
    ],
)
def test_up_refuses_a_flag_that_breaks_the_spec_naming_it_before_anything_starts(
    sqlite_env: Env, tmp_path: Path, flags: list[str], named: str
) -> None:
    out = sqlite_env.serve("up", str(write(tmp_path, HELLO)), "-n", "x", *flags)
    assert out.returncode == 1 and named in out.stderr, out.stderr
    assert not processes_of(sqlite_env.home)


def test_validate_json_lists_the_issue_a_flag_brought_in(sqlite_env: Env, tmp_path: Path) -> None:
    spec = write(
        tmp_path,
        ANY_OF.replace("replicas: 1", "replica_policy: {min_replicas: 1, num_overprovision: 1}"),
    )
    out = sqlite_env.serve("validate", str(spec), "--json", "--no-use-spot")
    assert out.returncode == 1
    (issue,) = json.loads(out.stdout)["issues"]
    assert issue["path"] == "resources" and issue["message"].endswith("set by --no-use-spot")


def test_help_lists_the_resource_flags(sqlite_env: Env) -> None:
    for command in ("up", "update", "validate"):
        out = sqlite_env.serve(command, "--help")
        for flag in (
            "--infra",
            "--cloud",
            "--region",
            "--zone",
            "--gpus",
            "--cpus",
            "--memory",
            "--use-spot",
            "--no-use-spot",
            "--env",
            "--secret",
        ):
            assert flag in out.stdout, f"serve {command} --help lacks {flag}"


@pytest.mark.slow
def test_up_and_update_place_replicas_where_the_flags_say(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    spec = str(write(tmp_path, HELLO))
    up = env.serve("up", spec, "-n", "flags", "-d", "--zone", "local-b", "--use-spot")
    assert up.returncode == 0, up.stderr
    wait_until(lambda: _replicas(env, version=1), "a replica of version 1")
    assert {(r["zone"], r["spot"]) for r in _replicas(env, version=1)} == {("local-b", True)}

    update = env.serve("update", "flags", spec, "--infra", "local/local/local-c", "--no-use-spot")
    assert update.returncode == 0, update.stderr
    wait_until(lambda: _replicas(env, version=2), "a replica of version 2")
    assert {(r["zone"], r["spot"]) for r in _replicas(env, version=2)} == {("local-c", False)}
    svc = env.status("flags")
    assert svc is not None and svc["spec"]["resources"]["zone"] == "local-c"


def _replicas(env: Env, version: int) -> list[dict[str, Any]]:
    svc = env.status("flags") or {"replicas": []}
    return [r for r in svc["replicas"] if r["version"] == version]
