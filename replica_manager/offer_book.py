"""Where a service's replicas can run: every location the enabled clouds offer for its
resource requests, ranked as placement tries them, and why none, when none fits.

Offers come from the catalog and the clouds enabled at start, so they are computed once per
service version. The tick asks for them, the API asks whether a new service fits at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policies.types import Offer
from provisioners.base import Provisioner, ResourceRequest
from provisioners.catalog import default_catalog


class OfferBook:
    def __init__(self, provisioners: Mapping[str, Provisioner]):
        self.provisioners = provisioners
        self._cached: dict[tuple[str, int], list[Offer]] = {}

    def for_version(
        self, service: str, version: int, requests: Sequence[ResourceRequest]
    ) -> list[Offer]:
        key = (service, version)
        if key not in self._cached:
            self._cached[key] = rank(self.provisioners, requests)
        return self._cached[key]

    def regions(self, service: str) -> dict[str, set[str]]:
        """The clouds and regions any version of the service was offered in."""
        out: dict[str, set[str]] = {}
        for (name, _), offers in self._cached.items():
            if name == service:
                for o in offers:
                    out.setdefault(o.location.cloud, set()).add(o.location.region)
        return out

    def forget(self, service: str) -> None:
        self._cached = {k: v for k, v in self._cached.items() if k[0] != service}

    def why_none(self, requests: Sequence[ResourceRequest]) -> str | None:
        """None if some enabled cloud can host these requests; else what to do."""
        if rank(self.provisioners, requests):
            return None
        asked = sorted({p.cloud for r in requests for p in r.places if p.cloud})
        enabled = ", ".join(self.provisioners) or "none"
        if asked and not set(asked) & set(self.provisioners):
            return (
                f"enable {', '.join(asked)} with SERVE_CLOUDS (now: {enabled}); `serve check` "
                "shows which clouds are usable"
            )
        clouds = [c for c in self.provisioners if c != "local"]
        return default_catalog().describe(requests[0], clouds)


def rank(
    provisioners: Mapping[str, Provisioner], requests: Sequence[ResourceRequest]
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
