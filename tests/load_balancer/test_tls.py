"""HTTPS at the load balancer: verifying clients, certificate replacement while serving.

Certificates are made by the test (``tests.support.tls``); clients trust exactly one of
them, so a request that succeeds says which certificate its connection was made with.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.load_balancer.conftest import REPO, Proc, ProcessFactory, free_port, wait_until
from tests.support.tls import self_signed


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def health(lb: Proc, trust: ssl.SSLContext) -> Any:
    return httpx.get(f"{lb.url}/-/healthz", verify=trust, timeout=5).json()


def fresh_connection_trusts(lb: Proc, trust: ssl.SSLContext) -> bool:
    """A new connection verifies against ``trust`` (so it got that certificate)."""
    try:
        with httpx.Client(verify=trust, timeout=5) as client:
            return client.get(f"{lb.url}/").status_code == 200
    except httpx.ConnectError:
        return False


def replace_pair(live: tuple[Path, Path], new: tuple[Path, Path]) -> None:
    """Swap both files atomically, as certificate tools do (a rename onto each path)."""
    for source, target in zip(new, live, strict=True):
        staged = target.with_suffix(".staged")
        shutil.copyfile(source, staged)
        os.replace(staged, target)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path / "live")


def tls_lb(procs: ProcessFactory, backend: Proc, pair: tuple[Path, Path], *extra: str) -> Proc:
    cert, key = pair
    flags = ["--replicas", backend.url, "--tls-certfile", str(cert), "--tls-keyfile", str(key)]
    return procs.lb(*flags, *extra, tls=trusting(cert))


def test_serves_https_that_a_verifying_client_accepts(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc], pair: tuple[Path, Path]
) -> None:
    lb = tls_lb(procs, two_backends[0], pair)
    response = httpx.get(f"{lb.url}/echo", verify=trusting(pair[0]), timeout=5)
    assert response.status_code == 200 and response.json()["replica"] == "A"
    assert ["x-forwarded-proto", "https"] in response.json()["headers"]
    assert health(lb, trusting(pair[0]))["tls"] == {
        "certfile": str(pair[0]),
        "reloads": 0,
        "reload_failures": 0,
    }


def test_sighup_gives_new_connections_the_new_certificate_while_open_ones_continue(
    procs: ProcessFactory,
    two_backends: tuple[Proc, Proc],
    pair: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    old_trust = trusting(pair[0])
    lb = tls_lb(procs, two_backends[0], pair)
    with httpx.Client(verify=old_trust, timeout=5) as kept_open:
        assert kept_open.get(f"{lb.url}/").status_code == 200
        new = self_signed(tmp_path / "new")
        new_trust = trusting(new[0])
        replace_pair(pair, new)
        lb.process.send_signal(signal.SIGHUP)
        wait_until(lambda: fresh_connection_trusts(lb, new_trust), "the new certificate")
        assert not fresh_connection_trusts(lb, old_trust)
        # Only the connection made before the reload can still verify with the old trust.
        assert kept_open.get(f"{lb.url}/").status_code == 200
    assert health(lb, new_trust)["tls"] == {
        "certfile": str(pair[0]),
        "reloads": 1,
        "reload_failures": 0,
    }


def test_replaced_files_are_picked_up_without_a_signal(
    procs: ProcessFactory,
    two_backends: tuple[Proc, Proc],
    pair: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    lb = tls_lb(procs, two_backends[0], pair, "--tls-check-seconds", "0.1")
    new = self_signed(tmp_path / "new")
    replace_pair(pair, new)
    wait_until(lambda: fresh_connection_trusts(lb, trusting(new[0])), "the new certificate")


def test_a_bad_replacement_keeps_the_old_certificate_and_is_logged(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc], pair: tuple[Path, Path]
) -> None:
    trust = trusting(pair[0])
    lb = tls_lb(procs, two_backends[0], pair)
    pair[0].write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    lb.process.send_signal(signal.SIGHUP)
    wait_until(lambda: health(lb, trust)["tls"]["reload_failures"] == 1, "a failed reload")
    assert fresh_connection_trusts(lb, trust)
    log = lb.stderr_text()
    assert '"event": "tls_reload_failed"' in log
    assert f"TLS certificate file {pair[0]} holds no PEM certificate" in log


def test_every_worker_reloads_when_the_supervisor_gets_sighup(
    procs: ProcessFactory,
    two_backends: tuple[Proc, Proc],
    pair: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    lb = tls_lb(procs, two_backends[0], pair, "--workers", "2")
    new = self_signed(tmp_path / "new")
    new_trust = trusting(new[0])
    replace_pair(pair, new)
    lb.process.send_signal(signal.SIGHUP)

    def all_new() -> bool:
        return all(fresh_connection_trusts(lb, new_trust) for _ in range(12))

    wait_until(all_new, "every worker to present the new certificate")


def test_a_client_that_never_completes_the_handshake_is_closed(
    procs: ProcessFactory, two_backends: tuple[Proc, Proc], pair: tuple[Path, Path]
) -> None:
    lb = tls_lb(procs, two_backends[0], pair, "--request-head-timeout", "0.5")
    with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as silent:
        assert silent.recv(1) == b""


def _encrypted(key: Path, folder: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    out = folder / "encrypted.pem"
    out.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return out


@pytest.mark.parametrize(
    ("case", "named", "says"),
    [
        ("missing certificate", "cert", "is missing or unreadable"),
        ("directory as key", "key", "is missing or unreadable"),
        ("certificate not PEM", "cert", "holds no PEM certificate"),
        ("key of another certificate", "key", "not an unencrypted PEM private key matching"),
        ("encrypted key", "key", "cannot ask for its passphrase"),
    ],
)
def test_refuses_to_start_with_a_pair_that_does_not_load_naming_the_file(
    tmp_path: Path, case: str, named: str, says: str
) -> None:
    cert, key = self_signed(tmp_path / "good")
    _, other_key = self_signed(tmp_path / "other")
    if case == "missing certificate":
        cert = tmp_path / "absent.pem"
    elif case == "directory as key":
        key = tmp_path
    elif case == "certificate not PEM":
        cert.write_text("hello\n")
    elif case == "key of another certificate":
        key = other_key
    else:
        key = _encrypted(key, tmp_path)
    args = ["--port", str(free_port()), "--replicas", "http://127.0.0.1:9"]
    args += ["--tls-certfile", str(cert), "--tls-keyfile", str(key)]
    out = subprocess.run(
        [sys.executable, "-m", "load_balancer", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 2
    assert str(cert if named == "cert" else key) in out.stderr and says in out.stderr
