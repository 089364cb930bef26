"""Which clouds are enabled, and the provisioner for each.

Clouds are opt-in (`SERVE_CLOUDS`, default `local`): a laptop with AWS credentials must not
start GPU VMs because an example YAML named no cloud. Adapters are imported only when
enabled, so a missing SDK for an unused cloud costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from provisioners.base import Provisioner
from provisioners.local import LocalProvisioner

ADAPTERS = {
    "aws": ("provisioners.aws", "AWSProvisioner"),
    "gcp": ("provisioners.gcp", "GCPProvisioner"),
    "azure": ("provisioners.azure", "AzureProvisioner"),
    "kubernetes": ("provisioners.kubernetes", "KubernetesProvisioner"),
}
KNOWN = ("local", *ADAPTERS)


class UnknownCloud(ValueError):
    pass


def make_provisioner(
    cloud: str, local_root: Path, log_root: Path, installation: str = ""
) -> Provisioner:
    """`installation` names the installation's own cloud resources (the bundle bucket)."""
    if cloud == "local":
        return LocalProvisioner(root=local_root, log_root=log_root)
    if cloud not in ADAPTERS:
        raise UnknownCloud(f"unknown cloud {cloud!r} in SERVE_CLOUDS; known: {', '.join(KNOWN)}")
    module, name = ADAPTERS[cloud]
    cls = getattr(importlib.import_module(module), name)
    return cls(installation=installation)  # type: ignore[no-any-return]


def make_provisioners(
    clouds: Iterable[str], local_root: Path, log_root: Path, installation: str = ""
) -> dict[str, Provisioner]:
    return {c: make_provisioner(c, local_root, log_root, installation) for c in clouds}
