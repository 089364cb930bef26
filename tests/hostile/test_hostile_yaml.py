"""Hostile service YAMLs are refused with one clear line through every door: `serve up`,
`serve validate` (plain and --json) and the API's `yaml` field. Nothing starts, no Python
object is built, and the controller that parsed them keeps serving."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Env, processes_of

HEAD = "service:\n  readiness_probe: /health\nresources:\n  ports: 8080\n"


def _alias_bomb() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return HEAD + "run: echo\n" + "\n".join(lines) + "\n"


def _block_nested(levels: int) -> str:
    body = "".join(f"{'  ' * i}k{i}:\n" for i in range(levels)) + f"{'  ' * levels}leaf\n"
    return HEAD + "run: echo\nconfig:\n" + "\n".join("  " + line for line in body.splitlines())


DOCUMENTS = {
    "flow-nesting": (HEAD + "run: echo\nenvs: " + "[" * 50_000 + "\n", "nested deeper than 20"),
    "block-nesting": (_block_nested(60), "nested deeper than 20"),
    "alias-bomb": (_alias_bomb(), "expands to over 20000 values"),
    "oversized": (HEAD + "run: echo\n" + "# pad\n" * 50_000, "the limit is 262144"),
    "python-tag": (
        HEAD + "run: !!python/object/apply:os.system ['touch {marker}']\n",
        "could not determine a constructor",
    ),
    "two-documents": (HEAD + "run: echo\n---\n" + HEAD + "run: echo\n", "not valid YAML"),
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hostile.yaml"
    path.write_text(text.replace("{marker}", str(tmp_path / "pwned")))
    return path


@pytest.mark.parametrize("kind", DOCUMENTS)
def test_serve_up_refuses_it_and_starts_nothing(sqlite_env: Env, tmp_path: Path, kind: str) -> None:
    text, expected = DOCUMENTS[kind]
    out = sqlite_env.serve("up", str(_write(tmp_path, text)), "-n", "evil", timeout=60)
    assert out.returncode == 1
    assert expected in out.stderr and "Traceback" not in out.stderr
    assert not processes_of(sqlite_env.home)
    assert not (sqlite_env.home / "controller.json").exists()
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("kind", DOCUMENTS)
def test_serve_validate_refuses_it_in_one_line(sqlite_env: Env, tmp_path: Path, kind: str) -> None:
    text, expected = DOCUMENTS[kind]
    out = sqlite_env.serve("validate", str(_write(tmp_path, text)), timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith("Error:") and expected in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("kind", DOCUMENTS)
def test_serve_validate_json_lists_the_issue(sqlite_env: Env, tmp_path: Path, kind: str) -> None:
    text, expected = DOCUMENTS[kind]
    out = sqlite_env.serve("validate", str(_write(tmp_path, text)), "--json", timeout=60)
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["valid"] is False
    assert expected in report["issues"][0]["message"]


def test_a_file_that_is_not_utf8_is_named_as_such(sqlite_env: Env, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes((HEAD + "run: echo caf\xe9\n").encode("latin-1"))
    for command in (["validate", str(path)], ["up", str(path), "-n", "x"]):
        out = sqlite_env.serve(*command, timeout=60)
        assert out.returncode == 1, command
        assert "not UTF-8 text (byte 0xe9" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("kind", [k for k in DOCUMENTS if k != "oversized"])
def test_the_api_yaml_field_refuses_it_with_422(
    api: httpx.Client, auth: dict[str, str], tmp_path: Path, kind: str
) -> None:
    text, expected = DOCUMENTS[kind]
    text = text.replace("{marker}", str(tmp_path / "pwned"))
    resp = api.post("/api/v1/services", json={"name": "evil", "yaml": text}, headers=auth)
    assert resp.status_code == 422
    assert resp.json()["error"] == "invalid_spec" and expected in resp.json()["detail"]
    assert not (tmp_path / "pwned").exists()


def test_the_api_yaml_field_refuses_an_oversized_document(
    api: httpx.Client, auth: dict[str, str]
) -> None:
    multibyte = HEAD + "run: echo\n# " + "\u00e9" * 200_000 + "\n"
    resp = api.post("/api/v1/services", json={"name": "evil", "yaml": multibyte}, headers=auth)
    assert resp.status_code == 422 and "the limit is 262144" in resp.json()["detail"]
    too_long = HEAD + "run: echo\n# " + "x" * 300_000 + "\n"
    resp = api.post("/api/v1/services", json={"name": "evil", "yaml": too_long}, headers=auth)
    assert resp.status_code == 422 and resp.json()["issues"][0]["path"] == "body.yaml"


def test_the_api_update_refuses_it_too(api: httpx.Client, auth: dict[str, str]) -> None:
    ok = HEAD.replace("/health", "/health\n  replicas: 0") + "run: echo\n"
    assert (
        api.post("/api/v1/services", json={"name": "target", "yaml": ok}, headers=auth).status_code
        == 201
    )
    for kind in ("flow-nesting", "alias-bomb"):
        resp = api.put("/api/v1/services/target", json={"yaml": DOCUMENTS[kind][0]}, headers=auth)
        assert resp.status_code == 422, kind
    assert api.get("/api/v1/services/target").json()["version"] == 1


def test_no_hostile_document_created_a_service(api: httpx.Client) -> None:
    assert [s["name"] for s in api.get("/api/v1/services").json()] == ["target"]
    assert api.get("/healthz").status_code == 200
