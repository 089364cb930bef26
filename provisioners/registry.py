"""Which clouds are enabled, and the provisioner for each.

Clouds are opt-in (`SERVE_CLOUDS`, default `local`): a laptop with AWS credentials must not
start GPU VMs because an example YAML named no cloud. Adapters are imported only when
enabled, so a missing SDK for an unused cloud costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from policies.types import Offer
from provisioners.base import Provisioner, ResourceRequest
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


def candidate_offers(
    provisioners: dict[str, Provisioner], requests: Sequence[ResourceRequest]
) -> list[Offer]:
    """Every location that can host a replica, in the order placement should try them:
    cheapest first for the market asked, or the YAML's order for `ordered` candidates.
    A location appears once, at its first (best) position."""
    ranked: list[tuple[float, Offer]] = []
    for position, request in enumerate(requests):
        clouds = {p.cloud for p in request.places} if request.places else {None}
        for cloud, prov in provisioners.items():
            if None not in clouds and cloud not in clouds:
                continue
            for offer in prov.offers(request):
                key = float(position) if request.ordered else _price(offer, request.use_spot)
                ranked.append((key, offer))
    ranked.sort(key=lambda item: item[0])
    seen: set[str] = set()
    out = []
    for _, offer in ranked:
        if offer.location.key not in seen:
            seen.add(offer.location.key)
            out.append(offer)
    return out


def _price(offer: Offer, spot: bool) -> float:
    if spot and offer.spot_price is not None:
        return offer.spot_price
    return offer.on_demand_price
