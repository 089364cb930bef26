"""The SSH public key an Azure Linux VM must be created with.

ARM refuses a Linux VM without a password or an SSH key. Replicas are driven entirely by
custom data, so no one needs to log in: the operator's key is used when one is configured
(`SERVE_AZURE_SSH_PUBLIC_KEY`, a path or the key text) or found in ~/.ssh, and otherwise a
fresh RSA key pair is generated whose private half is discarded.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_CANDIDATES = ("id_ed25519.pub", "id_rsa.pub")


def ssh_public_key() -> str:
    configured = os.environ.get("SERVE_AZURE_SSH_PUBLIC_KEY", "").strip()
    if configured.startswith("ssh-"):
        return configured
    if configured:
        return Path(configured).expanduser().read_text().strip()
    for name in _CANDIDATES:
        path = Path.home() / ".ssh" / name
        if path.is_file():
            return path.read_text().strip()
    return throwaway_public_key()


def throwaway_public_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode() + " spotserve-replica"
