"""`serve validate --json` shows a per-accelerator target as it will run, and refuses one
that would leave a replica unweighed with the field's path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.processes import Env

YAML = """
service:
  readiness_probe: /health
  load_balancing_policy: instance_aware_least_load
  replica_policy:
    min_replicas: 1
    max_replicas: 4
    target_qps_per_replica: {target}
resources:
  ports: 8080
  accelerators: {{A100: 1, L4: 1}}
  use_spot: true
run: python3 app.py
"""


def validate(env: Env, tmp_path: Path, target: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "svc.yaml"
    path.write_text(YAML.format(target=target))
    out = env.serve("validate", str(path), "--json")
    return out.returncode, json.loads(out.stdout)


def test_validate_json_shows_the_per_accelerator_target(sqlite_env: Env, tmp_path: Path) -> None:
    code, body = validate(sqlite_env, tmp_path, "{'A100:1': 10, L4: 4}")
    assert code == 0, body
    service = body["spec"]["service"]
    assert service["load_balancing_policy"] == "instance_aware_least_load"
    assert service["replica_policy"]["target_qps_per_replica"] == {"A100": 10.0, "L4": 4.0}


def test_validate_json_names_the_missing_entry(sqlite_env: Env, tmp_path: Path) -> None:
    code, body = validate(sqlite_env, tmp_path, "{A100: 10}")
    assert code == 1
    issue = body["issues"][0]
    assert issue["path"] == "service.replica_policy.target_qps_per_replica"
    assert "no entry for L4" in issue["message"]
