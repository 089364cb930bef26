"""Secret values reach the replica's environment and nothing the operator can see:
`serve status` (table, --json, --events), `serve validate`, `serve logs`, the API (service,
list, replicas, events, metrics), the controller's and load balancer's logs, and every other
file under SERVE_HOME.

Secret means: listed under `secrets:`, or an `envs` name ending in _TOKEN, _KEY, _SECRET or
containing PASSWORD (any case). A plain env value is shown, which proves the searches below
look where the values would be.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Env, kill_everything_of, read_json, wait_until

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
PLAIN = f"plain-{secrets.token_hex(6)}"
SECRET_ENVS = {
    "OPENAI_API_KEY": f"sk-{secrets.token_hex(8)}",
    "GITHUB_TOKEN": f"ghp-{secrets.token_hex(8)}",
    "DB_PASSWORD": f"pw-{secrets.token_hex(8)}",
    "db_password_backup": f"pwb-{secrets.token_hex(8)}",
    "WEBHOOK_SECRET": f"whs-{secrets.token_hex(8)}",
}
SECRETS_SECTION = {"HF_HUB_CREDENTIAL": f"hf-{secrets.token_hex(8)}"}
VALUES = {**SECRET_ENVS, **SECRETS_SECTION}

YAML = f"""
service:
  readiness_probe:
    path: /health
    initial_delay_seconds: 60
  replicas: 1
resources:
  ports: 8080
envs:
  MODEL_NAME: {PLAIN}
{"".join(f"  {k}: {v}{chr(10)}" for k, v in SECRET_ENVS.items())}secrets:
{"".join(f"  {k}: {v}{chr(10)}" for k, v in SECRETS_SECTION.items())}workdir: {HELLO}
setup: python3 --version
run: python3 app.py
"""


def _leaks(text: str) -> list[str]:
    return [name for name, value in VALUES.items() if value in text]


def _serve(env: Env, *args: str) -> str:
    out = env.serve(*args, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


def _replica_environ(env: Env) -> dict[str, str]:
    (record,) = [read_json(p) for p in (env.home / "local" / "instances").glob("*.json")]
    raw = Path(f"/proc/{record['pid']}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


@dataclass(frozen=True)
class Vault:
    env: Env
    printed: dict[str, str]
    replica_environ: dict[str, str]


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    """A running `vault` service with secrets; what the operator's commands printed while
    bringing it up, using it and rolling it to version 2, keyed by what printed it; and the
    environment of its first replica, read while it was the only one."""
    root = tmp_path_factory.mktemp("vault")
    env = Env(home=root / "serve-home", database_url=f"sqlite:///{root / 'serve.db'}")
    env.home.mkdir()
    spec = root / "vault.yaml"
    spec.write_text(YAML)
    seen = {"serve up": _serve(env, "up", str(spec), "-n", "vault")}
    environ = _replica_environ(env)
    endpoint = json.loads(_serve(env, "status", "vault", "--json"))["endpoint"]
    for _ in range(3):
        resp = httpx.post(f"{endpoint}/v1/chat/completions", json={"messages": []}, timeout=10)
        assert resp.status_code == 200
    seen["serve update"] = _serve(env, "update", "vault", str(spec))
    wait_until(
        lambda: any(
            e["kind"] == "service_updated"
            for e in httpx.get(f"{env.url}/api/v1/services/vault/events").json()
        ),
        "the update's event",
    )
    yield Vault(env, seen, environ)
    kill_everything_of(env.home)


@pytest.mark.slow
def test_the_replica_gets_every_real_value(vault: Vault) -> None:
    environ = vault.replica_environ
    assert {k: environ.get(k) for k in VALUES} == VALUES
    assert environ["MODEL_NAME"] == PLAIN


@pytest.mark.slow
def test_cli_output_never_shows_a_secret(vault: Vault) -> None:
    env, seen = vault.env, dict(vault.printed)
    spec = str(env.home.parent / "vault.yaml")
    for args in (
        ("status",),
        ("status", "vault"),
        ("status", "--json"),
        ("status", "vault", "--json"),
        ("status", "vault", "--json", "--events"),
        ("status", "--events"),
        ("validate", spec),
        ("validate", spec, "--json"),
        ("logs", "vault", "--controller", "--no-follow"),
        ("logs", "vault", "--lb", "--no-follow"),
        ("logs", "vault", "--replica", "1", "--no-follow"),
    ):
        seen[" ".join(args)] = _serve(env, *args)
    assert {what: _leaks(text) for what, text in seen.items() if _leaks(text)} == {}
    assert PLAIN in seen["status vault --json"] and PLAIN in seen[f"validate {spec} --json"]


@pytest.mark.slow
def test_status_json_marks_each_secret_redacted(vault: Vault) -> None:
    svc = json.loads(_serve(vault.env, "status", "vault", "--json"))
    shown = {**svc["spec"]["envs"], **svc["spec"]["secrets"]}
    assert {k: shown[k] for k in VALUES} == dict.fromkeys(VALUES, "<redacted>")
    assert shown["MODEL_NAME"] == PLAIN


@pytest.mark.slow
def test_the_api_never_returns_a_secret(vault: Vault) -> None:
    env = vault.env
    bodies = {}
    for path in (
        "/api/v1/services",
        "/api/v1/services/vault",
        "/api/v1/services/vault/replicas",
        "/api/v1/services/vault/events?limit=5000",
        "/api/v1/controller",
        "/metrics",
    ):
        resp = httpx.get(f"{env.url}{path}", headers=env.auth(), timeout=10)
        assert resp.status_code == 200, path
        bodies[path] = resp.text
    assert {path: _leaks(text) for path, text in bodies.items() if _leaks(text)} == {}
    assert PLAIN in bodies["/api/v1/services/vault"]


@pytest.mark.slow
def test_no_file_under_serve_home_holds_a_secret(vault: Vault) -> None:
    """Logs (controller.log as JSON lines, lb.log, replica logs), the daemon's own output,
    state files and the local replicas' scripts; the database lives outside SERVE_HOME here,
    and is the one place the values must be kept (to launch replacements)."""
    env = vault.env
    logs = env.home / "logs"
    assert (logs / "controller.log").stat().st_size > 0
    assert (logs / "services" / "vault" / "lb.log").stat().st_size > 0
    files = [p for p in env.home.rglob("*") if p.is_file() and not p.is_symlink()]
    leaked = {
        str(p.relative_to(env.home)): _leaks(p.read_bytes().decode(errors="replace")) for p in files
    }
    assert {path: names for path, names in leaked.items() if names} == {}
