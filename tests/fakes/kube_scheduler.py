"""The part of kube-scheduler the fake API server needs: which node a new pod may bind to,
and the message the scheduler writes on a pod no node fits.

Filters run per node in the default plugin order (pkg/scheduler/apis/config/v1/
default_plugins.go: NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts,
NodeResourcesFit, ...); a node fails at its first failing filter:

    NodeUnschedulable  "node(s) were unschedulable" (a cordoned node)
    TaintToleration    "node(s) had untolerated taint {key: value}" for the first NoSchedule
                       or NoExecute taint no toleration matches (kubernetes.io/docs/concepts/
                       scheduling-eviction/taint-and-toleration/; Kubernetes >= 1.33 may
                       print "node(s) had untolerated taint(s)")
    NodeAffinity       "node(s) didn't match Pod's node affinity/selector": every nodeSelector
                       label, and one of the required nodeSelectorTerms (terms ORed, a term's
                       matchExpressions ANDed; In NotIn Exists DoesNotExist Gt Lt;
                       kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/)
    NodeResourcesFit   "Insufficient <resource>" for each requested resource the node's
                       allocatable, less what its pods request, cannot cover (requests only;
                       a container's requests default to its limits)

The message is FitError.Error() (pkg/scheduler/framework/types.go): "0/N nodes are
available: " + the reasons counted per node, "<count> <reason>", sorted as strings and
joined by ", ", then "." and DefaultPreemption's PostFilter message: "preemption: 0/N nodes
are available: <k> No preemption victims found for incoming pod, <j> Preemption is not
helpful for scheduling." (resource shortfalls might be cured by evicting lower-priority
pods, which the fake never has; taints and affinity never are).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tests.fakes.kube_quantity import parse

UNRESOLVABLE = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


@dataclass
class FakeNode:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    allocatable: dict[str, str] = field(default_factory=dict)
    internal_ip: str = "10.0.0.2"
    external_ip: str | None = None
    unschedulable: bool = False

    def manifest(self) -> dict[str, Any]:
        """The Node object as GET /api/v1/nodes/{name} answers it."""
        addresses = [{"type": "InternalIP", "address": self.internal_ip}]
        if self.external_ip:
            addresses.append({"type": "ExternalIP", "address": self.external_ip})
        addresses.append({"type": "Hostname", "address": self.name})
        labels = {"kubernetes.io/hostname": self.name, **self.labels}
        spec: dict[str, Any] = {"taints": list(self.taints)} if self.taints else {}
        if self.unschedulable:
            spec["unschedulable"] = True
        return {
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {"name": self.name, "labels": labels},
            "spec": spec,
            "status": {
                "allocatable": dict(self.allocatable),
                "capacity": dict(self.allocatable),
                "addresses": addresses,
            },
        }


@dataclass(frozen=True)
class Verdict:
    node: str | None
    message: str = ""


def pod_requests(pod: Mapping[str, Any]) -> dict[str, Fraction]:
    """What the pod asks the scheduler for: the sum of its containers' requests, each
    defaulting to the container's limit (API defaulting, done before the scheduler runs)."""
    total: Counter[str] = Counter()
    for container in pod.get("spec", {}).get("containers", []):
        resources = container.get("resources") or {}
        wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, amount in wanted.items():
            total[name] += parse(amount)
    return dict(total)


def schedule(
    pod: Mapping[str, Any], nodes: Iterable[FakeNode], used: Mapping[str, Mapping[str, Fraction]]
) -> Verdict:
    """The first node the pod fits on, or None and the scheduler's message."""
    nodes = list(nodes)
    if not nodes:
        return Verdict(None, "no nodes available to schedule pods")
    reasons: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    for node in nodes:
        failed, resolvable = _filter(pod, node, used.get(node.name, {}))
        if not failed:
            return Verdict(node.name)
        reasons.update(failed)
        preemption[NO_VICTIMS if resolvable else UNRESOLVABLE] += 1
    head = f"0/{len(nodes)} nodes are available"
    return Verdict(
        None, f"{head}: {_histogram(reasons)}. preemption: {head}: {_histogram(preemption)}."
    )


def _filter(
    pod: Mapping[str, Any], node: FakeNode, used: Mapping[str, Fraction]
) -> tuple[list[str], bool]:
    """Why the pod does not fit the node ([] if it does), and whether preemption could
    cure it."""
    spec = pod.get("spec", {})
    if node.unschedulable:
        return ["node(s) were unschedulable"], False
    taint = _untolerated(node.taints, spec.get("tolerations") or [])
    if taint is not None:
        return [
            f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
        ], False
    if not _affinity_matches(spec, node.labels | {"kubernetes.io/hostname": node.name}):
        return ["node(s) didn't match Pod's node affinity/selector"], False
    short = [
        f"Insufficient {name}"
        for name, amount in sorted(pod_requests(pod).items())
        if amount > 0
        and amount + used.get(name, Fraction(0)) > parse(node.allocatable.get(name, 0))
    ]
    return short, True


def _untolerated(
    taints: list[dict[str, str]], tolerations: list[dict[str, Any]]
) -> dict[str, str] | None:
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue  # PreferNoSchedule only lowers a node's score
        if not any(_tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    """ToleratesTaint (k8s.io/api core/v1 toleration.go): effect empty or equal; key empty
    (with Exists) or equal; Exists matches any value, Equal (the default) the same value."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    if toleration.get("operator") == "Exists":
        return True
    return bool(toleration.get("key")) and toleration.get("value", "") == taint.get("value", "")


def _affinity_matches(spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms is None:
        return True
    return any(_term_matches(term, labels) for term in terms)


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    expressions = term.get("matchExpressions") or []
    if not expressions:
        return False  # an empty term matches no objects
    return all(_requirement_matches(r, labels) for r in expressions)


def _requirement_matches(requirement: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = requirement["key"], requirement["operator"], requirement.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and labels[key].lstrip("-").isdigit():
        number, bound = int(labels[key]), int(values[0])
        return number > bound if op == "Gt" else number < bound
    return False


def _histogram(counts: Counter[str]) -> str:
    return ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))
