"""An operator's HTTPS endpoint with API keys: `serve up` with `service.tls`, `serve keys`,
a certificate renewed in place, all through the CLI and real HTTPS."""

from __future__ import annotations

import json
import os
import shutil
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import REPO, Env, wait_until
from tests.support.tls import self_signed

CHAT = {"messages": [{"role": "user", "content": "hi"}]}
SPEC = """
service:
  readiness_probe: /health
  replicas: 1{tls}
resources:
  ports: 8080
envs:
  MODEL_NAME: hello-tls
workdir: {workdir}
run: python3 app.py
"""
TLS = """
  tls:
    certfile: certs/cert.pem
    keyfile: certs/key.pem"""


def write_spec(path: Path, tls: bool) -> Path:
    path.write_text(SPEC.format(tls=TLS if tls else "", workdir=REPO / "examples" / "hello"))
    return path


def cli(env: Env, *args: str, cwd: Path = REPO) -> str:
    out = env.serve(*args, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def health(endpoint: str, trust: ssl.SSLContext) -> Any:
    return httpx.get(f"{endpoint}/-/healthz", verify=trust, timeout=5).json()


def chat(endpoint: str, trust: ssl.SSLContext, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = f"{endpoint}/v1/chat/completions"
    return httpx.post(url, json=CHAT, headers=headers, verify=trust, timeout=10)


def trusts(endpoint: str, trust: ssl.SSLContext) -> bool:
    try:
        return httpx.get(f"{endpoint}/-/healthz", verify=trust, timeout=5).status_code == 200
    except httpx.ConnectError:
        return False


@pytest.mark.slow
def test_https_endpoint_with_api_keys_and_a_renewed_certificate(
    sqlite_env: Env, tmp_path: Path
) -> None:
    env = sqlite_env
    cert, key = self_signed(tmp_path / "certs")
    trust = ssl.create_default_context(cafile=str(cert))
    spec = write_spec(tmp_path / "service.yaml", tls=True)
    assert "READY" in cli(env, "up", str(spec), "-n", "hello", cwd=tmp_path)
    endpoint = json.loads(cli(env, "status", "hello", "--json"))["endpoint"]
    assert endpoint.startswith("https://")
    assert chat(endpoint, trust).json()["choices"][0]["message"]["content"].startswith("Hello")

    created = json.loads(cli(env, "keys", "create", "hello", "--label", "e2e", "--json"))
    other = json.loads(cli(env, "keys", "create", "hello", "--json"))
    wait_until(lambda: health(endpoint, trust)["api_keys"] == 2, "the load balancer's keys")
    refused = chat(endpoint, trust)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"] == "invalid_api_key"
    assert chat(endpoint, trust, "ssk_not-a-key").status_code == 401
    assert chat(endpoint, trust, created["key"]).status_code == 200
    listed = cli(env, "keys", "list", "hello", "--json")
    assert created["prefix"] in listed and created["key"] not in listed

    cli(env, "keys", "revoke", "hello", str(created["id"]))
    # Counted from after the revoke: syncs while the CLI ran may have carried the old keys.
    seen = health(endpoint, trust)["syncs_applied"]
    wait_until(lambda: health(endpoint, trust)["syncs_applied"] >= seen + 2, "a full sync")
    assert chat(endpoint, trust, created["key"]).status_code == 401
    assert chat(endpoint, trust, other["key"]).status_code == 200
    stored = [*_files(env.home), Path(env.database_url.removeprefix("sqlite:///"))]
    assert not any(created["key"].encode() in p.read_bytes() for p in stored)

    last = env.serve("keys", "revoke", "hello", str(other["id"]))
    assert last.returncode == 0 and "open to anyone" in last.stderr
    wait_until(lambda: chat(endpoint, trust).status_code == 200, "the endpoint to open")

    new_cert, new_key = self_signed(tmp_path / "renewed")
    for source, target in ((new_cert, cert), (new_key, key)):
        shutil.copyfile(source, target.with_suffix(".next"))
        os.replace(target.with_suffix(".next"), target)
    new_trust = ssl.create_default_context(cafile=str(new_cert))
    wait_until(lambda: trusts(endpoint, new_trust), "the renewed certificate", timeout=30)
    assert chat(endpoint, new_trust).status_code == 200
    cli(env, "down", "hello")


def _files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000]


@pytest.mark.slow
def test_serve_update_that_adds_tls_restarts_the_load_balancer_with_it(
    sqlite_env: Env, tmp_path: Path
) -> None:
    env = sqlite_env
    cert, _ = self_signed(tmp_path / "certs")
    trust = ssl.create_default_context(cafile=str(cert))
    plain = write_spec(tmp_path / "plain.yaml", tls=False)
    spec = write_spec(tmp_path / "service.yaml", tls=True)
    cli(env, "up", str(plain), "-n", "hello", cwd=tmp_path)
    endpoint = json.loads(cli(env, "status", "hello", "--json"))["endpoint"]
    assert endpoint.startswith("http://")
    assert httpx.get(f"{endpoint}/health", timeout=5).status_code == 200
    cli(env, "update", "hello", str(spec), cwd=tmp_path)
    secure = json.loads(cli(env, "status", "hello", "--json"))["endpoint"]
    assert secure == endpoint.replace("http://", "https://")
    wait_until(lambda: trusts(secure, trust), "the load balancer to serve HTTPS", timeout=60)
    assert chat(secure, trust).status_code == 200
    events = json.loads(cli(env, "status", "hello", "--json", "--events"))["events"]
    assert any(e["kind"] == "lb_restarted" for e in events)
