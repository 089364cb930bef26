"""`target_qps_per_replica` given per accelerator (`{A100: 10, L4: 4}`): what must hold
before a service is created, so that every replica it can launch has a capacity.

SkyPilot reads such a mapping with `instance_aware_least_load` (sky/serve/
load_balancing_policies.py, `InstanceAwareLeastLoadPolicy`) and its
`InstanceAwareRequestRateAutoscaler` (sky/serve/autoscalers.py); a replica whose accelerator
has no entry gets a fallback there (1.0 in the balancer, the smallest entry in the
autoscaler). Here such a YAML is refused instead, naming the missing entry, so the fallback
is left for what cannot be known before launch (a local or Kubernetes replica, whose
instance type the catalog does not list).

Rules: the mapping needs `load_balancing_policy: instance_aware_least_load` (the policy that
reads it); each key is an accelerator the catalog knows or the resources name (any case);
every resource candidate names an accelerator (or an instance type the catalog maps to one),
and each accelerator a candidate can launch has an entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.spec.errors import suggest
from controller.spec.models import ServiceSection, SpecProblem
from provisioners.base import ResourceRequest
from provisioners.catalog import default_catalog

FIELD = "service.replica_policy.target_qps_per_replica"


def check_per_accelerator_target(
    service: ServiceSection, requests: Sequence[ResourceRequest]
) -> None:
    table = service.policy.qps_per_accelerator
    if table is None:
        return
    if service.load_balancing_policy != "instance_aware_least_load":
        raise SpecProblem(
            "target_qps_per_replica per accelerator needs "
            "load_balancing_policy: instance_aware_least_load (the balancer that weighs "
            f"replicas by it); it is {service.load_balancing_policy}",
            "set service.load_balancing_policy: instance_aware_least_load, or give "
            "target_qps_per_replica as one number",
            "service.load_balancing_policy",
        )
    launchable = _launchable(requests)
    _check_keys(table, launchable)
    given = {name.upper() for name in table}
    missing = [name for name in launchable if name.upper() not in given]
    if missing:
        raise SpecProblem(
            f"target_qps_per_replica has no entry for {', '.join(missing)}, which the "
            "resources can launch",
            "add " + ", ".join(f"'{m}: <requests/s one {m} replica serves>'" for m in missing),
            FIELD,
        )


def _launchable(requests: Sequence[ResourceRequest]) -> list[str]:
    """Every accelerator name the resource candidates can launch, in their order."""
    out: dict[str, None] = {}
    for index, request in enumerate(requests):
        names = [a.name for a in request.accelerators] or _of_instance_type(request)
        if not names:
            where = "resources" if len(requests) == 1 else f"resource candidate {index + 1}"
            raise SpecProblem(
                f"{where} names no accelerator, so its replicas would have no entry in "
                "target_qps_per_replica",
                "name accelerators in resources (e.g. 'accelerators: {A100: 1, L4: 1}'), "
                "or give target_qps_per_replica as one number",
                FIELD,
            )
        out.update(dict.fromkeys(names))
    return list(out)


def _of_instance_type(request: ResourceRequest) -> list[str]:
    """The accelerator an `instance_type` carries, as the catalog lists it."""
    if not request.instance_type:
        return []
    clouds = {p.cloud for p in request.places if p.cloud}
    return sorted(
        {
            e.accelerator
            for e in default_catalog().entries
            if e.instance_type == request.instance_type
            and e.accelerator
            and (not clouds or e.cloud in clouds)
        }
    )


def _check_keys(table: dict[str, float], launchable: list[str]) -> None:
    known = {e.accelerator for e in default_catalog().entries if e.accelerator}
    known |= set(launchable)
    upper = {name.upper() for name in known}
    for key in table:
        if key.upper() not in upper:
            raise SpecProblem(
                f"{key!r} is not an accelerator the catalog or the resources know",
                suggest(key, known),
                f"{FIELD}.{key}",
            )
