"""`service.tls`: the key and certificate files the service's load balancer serves HTTPS with.

The paths are on the controller's host, where it starts the load balancer. They are checked
where a `serve up` or `serve update` is made, before anything is created: in the CLI (which
first makes relative paths absolute, from the current directory, as SkyPilot does) and again
in the controller, which may be on another host and reads them as it will at start. Every
problem names the YAML field and the file. This reads files, so it is not part of the
spec's validation (a stored spec must load even where the files are gone).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from controller.spec.errors import SpecError, SpecIssue
from controller.spec.models import TLS

CERT_FIELD = "service.tls.certfile"
KEY_FIELD = "service.tls.keyfile"
MAX_FILE_BYTES = 1 << 20
"""A certificate chain or key is a few KiB; this bounds what a hostile spec can make us read."""


def absolute_tls_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """The YAML mapping with `service.tls` paths made absolute from `base` (and `~`).
    Symlinks stay as they are: certbot's `live/` links move to each renewed file."""
    service = data.get("service")
    if not isinstance(service, dict) or not isinstance(service.get("tls"), dict):
        return data
    tls: dict[str, Any] = service["tls"]
    fixed = {
        k: os.path.abspath(base / Path(v).expanduser()) if isinstance(v, str) and v else v
        for k, v in tls.items()
    }
    return {**data, "service": {**service, "tls": fixed}}


def check_tls_files(tls: TLS | None, source: str = "") -> None:
    """Raise SpecError unless both files are readable here and load together."""
    if tls is None:
        return
    issues: list[SpecIssue] = []
    cert = _read(CERT_FIELD, tls.certfile, issues)
    key = _read(KEY_FIELD, tls.keyfile, issues)
    if cert is not None and key is not None:
        issues += _pair_issues(tls, cert, key)
    if issues:
        raise SpecError(issues, source)


def _read(field: str, path: str, issues: list[SpecIssue]) -> bytes | None:
    file = Path(path).expanduser()
    if not file.is_absolute():
        issues.append(
            SpecIssue(
                field,
                f"{path} is a relative path",
                "give an absolute path on the controller's host (`serve up` makes one)",
            )
        )
        return None
    try:
        if not file.is_file():
            issues.append(SpecIssue(field, f"{file} is missing or not a regular file"))
            return None
        with file.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        issues.append(SpecIssue(field, f"cannot read {file}: {why}"))
        return None
    if len(data) > MAX_FILE_BYTES:
        issues.append(SpecIssue(field, f"{file} is over {MAX_FILE_BYTES >> 10} KiB"))
        return None
    return data


def _pair_issues(tls: TLS, cert: bytes, key: bytes) -> list[SpecIssue]:
    try:
        chain = x509.load_pem_x509_certificates(cert)
    except ValueError:
        return [SpecIssue(CERT_FIELD, f"{tls.certfile} holds no PEM certificate")]
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except TypeError:
        return [
            SpecIssue(
                KEY_FIELD,
                f"{tls.keyfile} is encrypted",
                "the load balancer cannot ask for a passphrase; give it an unencrypted key "
                "(`openssl pkey -in KEY -out KEY.plain`) readable only by you",
            )
        ]
    except (ValueError, UnsupportedAlgorithm):
        return [SpecIssue(KEY_FIELD, f"{tls.keyfile} holds no PEM private key")]
    if _public(chain[0].public_key()) != _public(private.public_key()):
        mismatch = f"{tls.keyfile} is not the key of the certificate in {tls.certfile}"
        return [SpecIssue(KEY_FIELD, mismatch)]
    return _openssl_issues(tls)


def _public(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _openssl_issues(tls: TLS) -> list[SpecIssue]:
    """What the load balancer itself does with the pair (a key type OpenSSL refuses...)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
            tls.certfile, tls.keyfile, password=b""
        )
    except (OSError, ValueError) as exc:
        return [
            SpecIssue(
                "service.tls",
                f"{tls.certfile} and {tls.keyfile} do not load together for TLS: {exc}",
            )
        ]
    return []
