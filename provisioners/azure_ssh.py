"""The SSH public key an Azure Linux VM must be created with.

ARM refuses a Linux VM without a password or an SSH key. Replicas are driven entirely by
custom data, so no one needs to log in: the operator's key is used when one is configured
(`SERVE_AZURE_SSH_PUBLIC_KEY`, a path or the key text, used as given), else
`~/.ssh/id_rsa.pub`, else a fresh RSA key pair is generated whose private half is discarded.

RSA, not ED25519: the Compute API's `SshPublicKey.keyData` is documented as "at least
2048-bit and in ssh-rsa format" (REST reference, VirtualMachines, SshPublicKey), and ED25519
keys came to Linux VMs later, with conditions ("Detailed steps: Create and manage SSH keys for
authentication to a Linux VM in Azure", Supported SSH key formats). An `id_ed25519.pub` found
in ~/.ssh is therefore not picked up on its own; configure it explicitly to use it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_DISCOVERED = "id_rsa.pub"
RSA_BITS = 3072


def ssh_public_key(home: Path | None = None) -> str:
    configured = os.environ.get("SERVE_AZURE_SSH_PUBLIC_KEY", "").strip()
    if configured.startswith("ssh-"):
        return configured
    if configured:
        return Path(configured).expanduser().read_text().strip()
    path = (home or Path.home()) / ".ssh" / _DISCOVERED
    if path.is_file() and path.read_text().startswith("ssh-rsa "):
        return path.read_text().strip()
    return throwaway_public_key()


def throwaway_public_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode() + " spotserve-replica"
