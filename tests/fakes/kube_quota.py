"""ResourceQuota admission for pod creation, with the API server's refusal messages.

Reference: kubernetes.io/docs/concepts/policy/resource-quotas/ and the quota admission
plugin (k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go, CheckRequest;
pkg/quota/v1/evaluator/core/pods.go). In the order the plugin checks:

1. Constraints: a quota on cpu or memory (`requests.cpu`, `limits.memory`, ...) makes every
   container declare that resource, else `failed quota: <name>: must specify
   <missing, sorted, comma-joined>`.
2. Usage: the pod's usage (`pods`, `requests.<r>`, `limits.<r>` for cpu and memory,
   `cpu`/`memory` as requests, `requests.<extended>` such as `requests.nvidia.com/gpu`)
   plus what the namespace's live pods use must stay within `hard`, else `exceeded quota:
   <name>, requested: <r>=<q>, used: <r>=<q>, limited: <r>=<q>` for the exceeded resources.

Both are 403 Forbidden: `pods "<name>" is forbidden: <message>` (admission.NewForbidden).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tests.fakes.kube_quantity import parse, show

_VALIDATED = frozenset(
    {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
)
_BINARY = ("memory", "storage")


@dataclass(frozen=True)
class Quota:
    name: str
    hard: Mapping[str, str]

    def refusal(self, pod: Mapping[str, Any], live: Iterable[Mapping[str, Any]]) -> str | None:
        """Why admission refuses `pod` given the namespace's live pods; None if it admits."""
        missing = self._missing(pod)
        if missing:
            return f"failed quota: {self.name}: must specify {','.join(sorted(missing))}"
        requested = {k: v for k, v in pod_usage(pod).items() if k in self.hard}
        used: Counter[str] = Counter()
        for other in live:
            used.update({k: v for k, v in pod_usage(other).items() if k in self.hard})
        exceeded = sorted(
            k for k, v in requested.items() if v > 0 and used[k] + v > parse(self.hard[k])
        )
        if not exceeded:
            return None
        return (
            f"exceeded quota: {self.name}, requested: {_pretty(exceeded, requested)}, "
            f"used: {_pretty(exceeded, used)}, limited: "
            f"{_pretty(exceeded, {k: parse(self.hard[k]) for k in exceeded})}"
        )

    def _missing(self, pod: Mapping[str, Any]) -> set[str]:
        required = _VALIDATED & set(self.hard)
        missing: set[str] = set()
        for container in pod.get("spec", {}).get("containers", []):
            missing |= required - set(_container_usage(container))
        return missing


def pod_usage(pod: Mapping[str, Any]) -> dict[str, Fraction]:
    usage: Counter[str] = Counter({"pods": Fraction(1)})
    for container in pod.get("spec", {}).get("containers", []):
        usage.update(_container_usage(container))
    return dict(usage)


def _container_usage(container: Mapping[str, Any]) -> dict[str, Fraction]:
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = {**limits, **(resources.get("requests") or {})}  # requests default to limits
    usage: dict[str, Fraction] = {}
    for name, amount in requests.items():
        usage[f"requests.{name}"] = parse(amount)
        if name in ("cpu", "memory"):
            usage[name] = parse(amount)
    for name, amount in limits.items():
        if name in ("cpu", "memory"):
            usage[f"limits.{name}"] = parse(amount)
    return usage


def _pretty(names: list[str], amounts: Mapping[str, Fraction]) -> str:
    return ",".join(
        f"{n}={show(amounts.get(n, Fraction(0)), any(b in n for b in _BINARY))}" for n in names
    )
