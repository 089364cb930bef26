"""`service.tls` through the CLI: files that cannot serve HTTPS are refused by name, before
anything starts; good ones are taken with their paths made absolute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.cli.test_bad_input import nothing_started
from tests.support.processes import Env
from tests.support.tls import self_signed

SPEC = """
service:
  readiness_probe: /health
  tls:
    certfile: {cert}
    keyfile: {key}
resources:
  ports: 8080
run: python3 app.py
"""


def spec_file(tmp_path: Path, cert: Path | str, key: Path | str) -> Path:
    path = tmp_path / "svc.yaml"
    path.write_text(SPEC.format(cert=cert, key=key))
    return path


def encrypted_copy(key: Path) -> Path:
    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    out = key.with_name("encrypted.pem")
    out.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return out


@pytest.mark.parametrize(
    ("case", "field", "says"),
    [
        ("missing key", "service.tls.keyfile", "is missing or not a regular file"),
        ("directory as certificate", "service.tls.certfile", "is missing or not a regular file"),
        ("certificate not PEM", "service.tls.certfile", "holds no PEM certificate"),
        ("key of another certificate", "service.tls.keyfile", "is not the key of the certificate"),
        ("encrypted key", "service.tls.keyfile", "is encrypted"),
    ],
)
def test_serve_up_refuses_tls_files_that_do_not_load_naming_them(
    sqlite_env: Env, tmp_path: Path, case: str, field: str, says: str
) -> None:
    cert, key = self_signed(tmp_path / "good")
    _, other_key = self_signed(tmp_path / "other")
    if case == "missing key":
        key = tmp_path / "absent-key.pem"
    elif case == "directory as certificate":
        cert = tmp_path / "good"
    elif case == "certificate not PEM":
        cert.write_text("not a certificate\n")
    elif case == "key of another certificate":
        key = other_key
    else:
        key = encrypted_copy(key)
    named = cert if field.endswith("certfile") else key
    out = sqlite_env.serve("up", str(spec_file(tmp_path, cert, key)), "-n", "tls")
    assert out.returncode != 0
    assert f"{field}: " in out.stderr and str(named) in out.stderr and says in out.stderr
    assert nothing_started(sqlite_env)


def test_relative_tls_paths_are_taken_from_the_current_directory(
    sqlite_env: Env, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path / "certs")
    spec = spec_file(tmp_path, "certs/cert.pem", "certs/key.pem")
    out = sqlite_env.serve("validate", str(spec), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["spec"]["service"]["tls"] == {"certfile": str(cert), "keyfile": str(key)}
    assert not any("service.tls" in w for w in answer["warnings"])
