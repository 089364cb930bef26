"""Which clouds are enabled, and the provisioner for each.

Clouds are opt-in (`SERVE_CLOUDS`, default `local`): a laptop with AWS credentials must not
start GPU VMs because an example YAML named no cloud. Adapters are imported only when
enabled, so a missing SDK for an unused cloud costs nothing. Each factory is typed to
return a `Provisioner`, so the type checker proves every adapter implements the protocol.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from provisioners.base import Provisioner
from provisioners.local import LocalProvisioner


@dataclass(frozen=True)
class Where:
    """What a factory may need: the local provisioner's folders, the installation id."""

    local_root: Path
    log_root: Path
    installation: str


def _local(where: Where) -> Provisioner:
    return LocalProvisioner(root=where.local_root, log_root=where.log_root)


def _aws(where: Where) -> Provisioner:
    from provisioners.aws import AWSProvisioner

    return AWSProvisioner(installation=where.installation)


def _gcp(where: Where) -> Provisioner:
    from provisioners.gcp import GCPProvisioner

    return GCPProvisioner(installation=where.installation)


def _azure(where: Where) -> Provisioner:
    from provisioners.azure import AzureProvisioner

    return AzureProvisioner(installation=where.installation)


def _kubernetes(where: Where) -> Provisioner:
    from provisioners.kubernetes import KubernetesProvisioner

    return KubernetesProvisioner(installation=where.installation)


FACTORIES: dict[str, Callable[[Where], Provisioner]] = {
    "local": _local,
    "aws": _aws,
    "gcp": _gcp,
    "azure": _azure,
    "kubernetes": _kubernetes,
}
KNOWN = tuple(FACTORIES)


class UnknownCloud(ValueError):
    pass


def plugins(env: Mapping[str, str]) -> dict[str, Callable[[Where], Provisioner]]:
    """More clouds from `SERVE_CLOUD_PLUGINS=name=module:factory,...`: each factory takes a
    `Where` and returns a `Provisioner` (how the scale benchmark adds its cloud)."""
    out: dict[str, Callable[[Where], Provisioner]] = {}
    for item in filter(None, (p.strip() for p in env.get("SERVE_CLOUD_PLUGINS", "").split(","))):
        name, _, target = item.partition("=")
        module, _, attr = target.partition(":")
        if not (name and module and attr):
            raise UnknownCloud(f"SERVE_CLOUD_PLUGINS entry {item!r}: write name=module:factory")
        factory = getattr(importlib.import_module(module), attr)
        out[name] = factory
    return out


def make_provisioner(
    cloud: str, local_root: Path, log_root: Path, installation: str = ""
) -> Provisioner:
    """`installation` names the installation's own cloud resources (the bundle bucket)."""
    factory = FACTORIES.get(cloud) or plugins(os.environ).get(cloud)
    if factory is None:
        raise UnknownCloud(f"unknown cloud {cloud!r} in SERVE_CLOUDS; known: {', '.join(KNOWN)}")
    return factory(Where(local_root, log_root, installation))


def make_provisioners(
    clouds: Iterable[str], local_root: Path, log_root: Path, installation: str = ""
) -> dict[str, Provisioner]:
    return {c: make_provisioner(c, local_root, log_root, installation) for c in clouds}
