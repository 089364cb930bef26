"""Each replica's capacity when `target_qps_per_replica` is given per accelerator: what the
autoscaler counts (`Fleet`) and what the load balancers weigh replicas by (`weights`).

A replica's accelerator is read from its row's cloud and instance type through the catalog
(one cloud and instance type always mean the same hardware: provisioners/catalog.py), as
SkyPilot reads it from the launched resources' first accelerator
(sky/serve/autoscalers.py, `_get_gpu_type_from_replica_info`). Its capacity is that
accelerator's entry, matched by name in any case. A replica whose accelerator the catalog
cannot name (a local process, a Kubernetes pod) counts as the smallest entry: the fallback
of SkyPilot's autoscaler (`_get_target_qps_for_gpu_type`), used for the weights too so that
the balancer and the autoscaler agree (SkyPilot's balancer would use 1.0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from autoscaler.capacity import Fleet
from controller.spec import ServiceSpec
from policies.types import Offer
from provisioners.catalog import default_catalog
from replica_manager.lifecycle import ALIVE
from replica_manager.records import ReplicaRecord


class CapacityTable:
    """Requests/s per replica by accelerator name (`{A100: 10, L4: 4}`)."""

    def __init__(self, per_accelerator: Mapping[str, float]) -> None:
        self._qps = {name.upper(): float(qps) for name, qps in per_accelerator.items()}
        self._smallest = min(self._qps.values())

    @classmethod
    def of(cls, spec: ServiceSpec) -> CapacityTable | None:
        """The spec's table, or None when its target is one number (or unset)."""
        table = spec.service.policy.qps_per_accelerator
        return cls(table) if table else None

    def qps(self, cloud: str, instance_type: str) -> float:
        entry = default_catalog().instance_spec(cloud, instance_type)
        name = entry.accelerator.upper() if entry is not None else ""
        return self._qps.get(name, self._smallest)

    def fleet(
        self, records: Iterable[ReplicaRecord], latest_version: int, offers: Sequence[Offer]
    ) -> Fleet:
        """Live replicas of the latest version, and the accelerator placement tries first
        (offers come ranked: cheapest for the market asked, or the YAML's order)."""
        live = tuple(
            self.qps(r.location.cloud, r.instance_type)
            for r in records
            if r.status in ALIVE and r.version >= latest_version
        )
        first = offers[0] if offers else None
        following = self.qps(first.location.cloud, first.instance_type) if first else None
        return Fleet(live, following or self._smallest)

    def weights(self, replicas: Iterable[tuple[str, str, str]]) -> dict[str, float]:
        """`{url: capacity}` for `(url, cloud, instance_type)` of each ready replica."""
        return {url: self.qps(cloud, itype) for url, cloud, itype in replicas}
