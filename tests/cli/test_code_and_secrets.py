"""`serve up` ships the operator's code, files, envs and secrets to local replicas, and
refuses what cannot be shipped before anything is created."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ControllerProcess, Env, wait_until

APP = """
import http.server, json, os, socketserver
seen = {k: os.environ.get(k) for k in ("MODEL", "HF_TOKEN", "API_KEY")}
root = os.environ.get("SERVE_MOUNT_ROOT", "/")
seen["mounted"] = open(os.path.join(root, "etc/serve-test/model.json")).read()
seen["data"] = open(os.path.join(root, "data/b/c.txt")).read()
json.dump(seen, open("seen.json", "w"))
handler = http.server.SimpleHTTPRequestHandler
socketserver.TCPServer(("127.0.0.1", int(os.environ["SERVE_REPLICA_PORT"])), handler).serve_forever()
"""
YAML = """
name: shipped
service: {readiness_probe: /seen.json, replicas: 1}
resources: {ports: 8080}
workdir: app
file_mounts:
  /etc/serve-test/model.json: ./config/model.json
  /data: ./data
envs: {MODEL: tiny, API_KEY: null}
secrets: {HF_TOKEN: null}
run: python3 app.py
"""


def project(tmp_path: Path, app_bytes: int = 0) -> Path:
    """An operator's project directory: the YAML, an app, a config file, a data folder."""
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "app" / "app.py").write_text(APP)
    (root / "app" / ".gitignore").write_text("*.bin\n")
    (root / "app" / "ignored.bin").write_text("never shipped")
    if app_bytes:
        (root / "app" / "blob.dat").write_bytes(b"x" * app_bytes)
    (root / "config").mkdir()
    (root / "config" / "model.json").write_text('{"layers": 2}')
    (root / "data" / "b").mkdir(parents=True)
    (root / "data" / "b" / "c.txt").write_text("C")
    (root / "service.yaml").write_text(YAML)
    return root


def services(env: Env) -> list[Any]:
    return list(httpx.get(f"{env.url}/api/v1/services", timeout=10).json())


def test_code_files_envs_and_secrets_reach_the_replica(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    root = project(tmp_path)
    env.extra["HF_TOKEN"] = "hf-from-my-shell"
    out = env.serve(
        "up", "service.yaml", "--secret", "HF_TOKEN", "--env", "API_KEY=k-123", cwd=root
    )
    assert out.returncode == 0, out.stdout + out.stderr
    endpoint = env.status("shipped")["endpoint"]  # type: ignore[index]
    seen = wait_until(lambda: _seen(endpoint), "the replica's report")
    assert seen == {
        "MODEL": "tiny",
        "HF_TOKEN": "hf-from-my-shell",
        "API_KEY": "k-123",
        "mounted": '{"layers": 2}',
        "data": "C",
    }
    workdirs = list((env.home / "local" / "replicas").glob("*/workdir"))
    assert [sorted(p.name for p in w.iterdir() if p.name != "seen.json") for w in workdirs] == [
        [".gitignore", "app.py"]
    ], "the workdir arrives without its .gitignored files"


def _seen(endpoint: str) -> dict[str, Any] | None:
    try:
        resp = httpx.get(f"{endpoint}/seen.json", timeout=5)
    except httpx.HTTPError:
        return None
    return dict(json.loads(resp.text)) if resp.status_code == 200 else None


def test_a_secret_left_null_is_refused_naming_it_and_nothing_is_created(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    root = project(tmp_path)
    out = env.serve("up", "service.yaml", "--env", "API_KEY=x", cwd=root)
    assert out.returncode != 0
    assert "secrets.HF_TOKEN" in out.stderr and "--secret HF_TOKEN" in out.stderr
    assert services(env) == []


def test_a_flag_naming_a_variable_the_shell_lacks_is_refused(
    sqlite_controller: ControllerProcess, tmp_path: Path
) -> None:
    env = sqlite_controller.env
    root = project(tmp_path)
    env.extra.pop("NOT_SET_ANYWHERE", None)
    os.environ.pop("NOT_SET_ANYWHERE", None)
    out = env.serve("up", "service.yaml", "--secret", "NOT_SET_ANYWHERE", cwd=root)
    assert out.returncode != 0
    assert "NOT_SET_ANYWHERE is not set in your environment" in out.stderr
    assert services(env) == []


def test_a_workdir_over_the_limit_is_refused_with_its_size_before_anything_is_created(
    sqlite_env: Env, tmp_path: Path
) -> None:
    sqlite_env.extra["SERVE_MAX_BUNDLE_BYTES"] = "100000"
    ControllerProcess(sqlite_env).start()
    root = project(tmp_path, app_bytes=300_000)
    out = sqlite_env.serve(
        "up", "service.yaml", "--secret", "HF_TOKEN=x", "--env", "API_KEY=y", cwd=root
    )
    assert out.returncode != 0
    assert "workdir holds more than" in out.stderr
    assert "SERVE_MAX_BUNDLE_BYTES=100000" in out.stderr
    assert services(sqlite_env) == []
    assert not list((sqlite_env.home / "bundles").glob("*.tar.gz"))
