"""A small Kubernetes API server: the core/v1 calls the adapter makes, with a scheduler.

No real API server can run here (kind/k3d need a Docker engine, envtest downloads
binaries), so this answers the REST calls of the official client over real HTTP: create,
read, delete and list (with equality label selectors) pods, services and secrets in known
namespaces, read and list nodes, with the API server's `Status` bodies
(kubernetes.io/docs/reference/using-api/api-concepts/#response-status-kind) for 401, 403,
404, 409 and 422. What the control plane does around those calls is reproduced too:

- Secret validation's size limit: data (decoded, summed over keys, stringData included)
  over `core.MaxSecretSize` = 1048576 bytes is refused with 422 Invalid, as
  k8s.io/kubernetes pkg/apis/core/validation ValidateSecret does
  (`field.TooLong(field.NewPath("data"), "", core.MaxSecretSize)`, whose text is
  k8s.io/apimachinery pkg/util/validation/field `TooLong`: "Too long: may not be more than
  1048576 bytes"; the Status is apierrors.NewInvalid's: `Secret "<name>" is invalid:
  data: ...`, reason Invalid, details.causes[] with reason FieldValueTooLong, field data).

- Nodes with labels, taints, allocatable cpu/memory/`nvidia.com/gpu` and InternalIP /
  ExternalIP addresses. A created pod is scheduled at once (`kube_scheduler`): bound to
  the first node that fits and Running (the kubelet is instant here), or left Pending
  with `PodScheduled=False, reason Unschedulable` and the scheduler's message. Pending
  pods are tried again when nodes are added or pods go away.
- ResourceQuota admission per namespace (`kube_quota`), 403 with the plugin's wording.
- Graceful deletion (kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/
  #pod-termination): DELETE of a pod bound to a node sets `deletionTimestamp` and the pod
  stays until its kubelet confirms (here: `termination_seconds` later, 0 by default, i.e.
  at the next request); an unbound pod and a service go at once. When a pod goes, the
  garbage collector deletes the services it owns (kubernetes.io/docs/concepts/
  architecture/garbage-collection/#owners-dependents).

Knobs move pods the way the kubelet and the control plane would record it (evict,
preempt, fail). Implements `FakeCloudControl` of the contract suite.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from fractions import Fraction
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from policies.types import Location
from tests.fakes.json_http import LoopbackServer
from tests.fakes.kube_quota import Quota
from tests.fakes.kube_scheduler import FakeNode, pod_requests, schedule

TOKEN = "fake-bearer-token"
_NAMESPACED = re.compile(
    r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<kind>pods|services|secrets)(?:/(?P<name>[^/]+))?$"
)
_CLUSTER = re.compile(r"^/api/v1/(?P<kind>nodes)(?:/(?P<name>[^/]+))?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MAX_SECRET_SIZE = 1024 * 1024
_LIST_KINDS = {"pods": "PodList", "services": "ServiceList", "secrets": "SecretList"}
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_USER = "system:serviceaccount:default:ci"
Reply = tuple[int, dict[str, Any]]


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> Reply:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return code, body


def not_found(kind: str, name: str) -> Reply:
    return status(404, "NotFound", f'{kind} "{name}" not found', {"name": name, "kind": kind})


def default_nodes() -> list[FakeNode]:
    """A CPU node and a GKE-style T4 pool node (labelled by GKE and by GPU feature
    discovery, tainted as GKE taints GPU pools in a cluster that also has CPU pools)."""
    return [
        FakeNode(
            "cpu-1",
            allocatable={"cpu": "16", "memory": "64Gi", "pods": "110"},
            internal_ip="10.0.0.2",
            external_ip="203.0.113.2",
        ),
        FakeNode(
            "t4-1",
            labels={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
            | {"nvidia.com/gpu.product": "Tesla-T4"},
            taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
            allocatable={"cpu": "32", "memory": "120Gi", "nvidia.com/gpu": "8", "pods": "110"},
            internal_ip="10.0.0.3",
            external_ip="203.0.113.3",
        ),
    ]


class FakeKubeAPIServer:
    def __init__(self, namespaces: tuple[str, ...] = ("default",)):
        self.namespaces = set(namespaces)
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.nodes: dict[str, FakeNode] = {}
        self.requests: Counter[tuple[str, str]] = Counter()
        self.termination_seconds = 0.0
        self._quotas: dict[str, Quota] = {}
        self._forbidden: set[tuple[str, str | None]] = set()
        self._reject = False
        self._gc = True
        self._stall = 0.0
        self._generation = 0
        self._going: dict[tuple[str, str], float] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.RLock()
        self._http = LoopbackServer(_handler_for(self))
        self.clear()

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> FakeKubeAPIServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def write_kubeconfig(self, path: Path, context: str, namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "ci", "user": {"token": TOKEN}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": "fake", "user": "ci", "namespace": namespace},
                }
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # Knobs of the contract suite.

    def refuse_capacity(self, location: Location) -> None:
        pytest.skip(
            "capacity is cluster-wide and one provisioner manages one cluster, so no "
            "location_b can have what location_a lacks; a pod no node fits is REFUSED by "
            "`get` (test_pod_no_node_fits_is_refused_with_the_schedulers_message)"
        )

    def exceed_quota(self, location: Location) -> None:
        """A pod-count quota the namespace has used up."""
        with self._lock:
            live = len(self._live_pods(location.zone))
        self.set_quota(location.zone, "compute-quota", {"pods": str(live)})

    def reject_credentials(self) -> None:
        self._reject = True

    def preempt(self, instance_id: str) -> None:
        """What a graceful node shutdown (e.g. a spot node reclaimed) leaves on the pod."""
        self._update_status(
            instance_id,
            phase="Failed",
            reason="Terminated",
            message="Pod was terminated in response to imminent node shutdown.",
            conditions=[
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "TerminationByKubelet",
                    "message": "Pod was terminated in response to imminent node shutdown.",
                }
            ],
        )

    def tags_of(self, instance_id: str) -> dict[str, str]:
        return dict(self._pod(instance_id)["metadata"].get("labels") or {})

    # Further knobs.

    def add_node(self, node: FakeNode) -> None:
        with self._lock:
            self.nodes[node.name] = node
            self._schedule_pending()

    def remove_nodes(self) -> None:
        with self._lock:
            self.nodes.clear()

    def set_quota(self, namespace: str, name: str, hard: dict[str, str]) -> None:
        with self._lock:
            self._quotas[namespace] = Quota(name, hard)

    def forbid(self, verb: str, kind: str | None = None) -> None:
        self._forbidden.add((verb, kind))

    def pause_garbage_collector(self) -> None:
        self._gc = False

    def stall(self, seconds: float) -> None:
        """Answer every request only after `seconds` (a hung API server)."""
        self._stall = seconds

    def evict(self, name: str) -> None:
        self._update_status(
            name, phase="Failed", reason="Evicted", message="The node was low on resource: memory."
        )

    def fail(self, name: str) -> None:
        self._update_status(name, phase="Failed", message="container exited with code 1")

    def delete_outside(self, name: str, namespace: str = "default") -> None:
        """`kubectl delete pod` by someone else: graceful, like any DELETE."""
        with self._lock:
            self._delete(namespace, "pods", name)

    def find(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        with self._lock:
            self._settle()
            return self.objects.get((kind, namespace, name))

    def clear(self) -> None:
        with self._lock:
            self.objects.clear()
            self.nodes = {n.name: n for n in default_nodes()}
            self.requests.clear()
            self.termination_seconds = 0.0
            self._quotas.clear()
            self._forbidden.clear()
            self._going.clear()
            self._reject = False
            self._gc = True
            self._stall = 0.0
            self._generation += 1

    # The API.

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if self._stall:
            generation = self._generation
            time.sleep(self._stall)
            if generation != self._generation:  # the test that stalled us has ended
                return status(503, "ServiceUnavailable", "the fake was reset")
        if headers.get("authorization") != f"Bearer {TOKEN}" or self._reject:
            return status(401, "Unauthorized", "Unauthorized")
        url = urlsplit(path)
        match = _NAMESPACED.match(url.path) or _CLUSTER.match(url.path)
        if not match:
            return status(404, "NotFound", "the server could not find the requested resource")
        parts = match.groupdict()
        ns, kind, name = parts.get("ns"), parts["kind"], parts["name"]
        verb = {"GET": "get" if name else "list", "POST": "create", "DELETE": "delete"}[method]
        with self._lock:
            self.requests[(verb, kind)] += 1
            self._settle()
            if (verb, None) in self._forbidden or (verb, kind) in self._forbidden:
                return _forbidden(verb, kind, name, ns)
            if kind == "nodes":
                return self._node_call(name)
            assert ns is not None
            if ns not in self.namespaces:
                return not_found("namespaces", ns)
            if verb == "create":
                return self._create(ns, kind, json.loads(body or b"{}"))
            if verb == "list":
                return self._list(ns, kind, parse_qs(url.query).get("labelSelector", [""])[0])
            found = self.objects.get((kind, ns, name or ""))
            if found is None:
                return not_found(kind, name or "")
            if verb == "delete":
                return 200, self._delete(ns, kind, name or "")
            return 200, found

    def _node_call(self, name: str | None) -> Reply:
        if name is None:
            items = [n.manifest() for n in self.nodes.values()]
            return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": items}
        node = self.nodes.get(name)
        return (200, node.manifest()) if node else not_found("nodes", name)

    def _create(self, ns: str, kind: str, obj: dict[str, Any]) -> Reply:
        meta = obj.setdefault("metadata", {})
        name = str(meta.get("name", ""))
        problem = _invalid(name, meta.get("labels") or {}, subdomain=kind == "secrets")
        if problem:
            return status(422, "Invalid", f'{obj.get("kind", kind)} "{name}" is invalid: {problem}')
        if kind == "secrets" and _secret_size(obj) > MAX_SECRET_SIZE:
            return _secret_too_long(name)
        if (kind, ns, name) in self.objects:
            return status(
                409,
                "AlreadyExists",
                f'{kind} "{name}" already exists',
                {"name": name, "kind": kind},
            )
        quota = self._quotas.get(ns)
        refusal = quota.refusal(obj, self._live_pods(ns)) if quota and kind == "pods" else None
        if refusal:
            message = f'pods "{name}" is forbidden: {refusal}'
            return status(403, "Forbidden", message, {"name": name, "kind": "pods"})
        number = next(self._numbers)
        meta.update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            resourceVersion=str(number),
            creationTimestamp=_now(),
        )
        if kind == "pods":
            obj["status"] = {"phase": "Pending"}
        elif kind == "services":
            _allocate(obj, number)
        self.objects[(kind, ns, name)] = obj
        reply = copy.deepcopy(obj)  # as stored, before the scheduler looks at it
        if kind == "pods":
            self._schedule(obj)
        return 201, reply

    def _list(self, ns: str, kind: str, selector: str) -> Reply:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        items = [
            obj
            for (k, n, _), obj in self.objects.items()
            if k == kind
            and n == ns
            and all((obj["metadata"].get("labels") or {}).get(a) == b for a, b in wanted.items())
        ]
        return 200, {"kind": _LIST_KINDS[kind], "apiVersion": "v1", "metadata": {}, "items": items}

    def _delete(self, ns: str, kind: str, name: str) -> dict[str, Any]:
        obj = self.objects[(kind, ns, name)]
        if kind == "pods" and obj.get("spec", {}).get("nodeName"):
            meta = obj["metadata"]
            meta.setdefault("deletionTimestamp", _now())
            meta.setdefault("deletionGracePeriodSeconds", 30)
            self._going.setdefault((ns, name), time.monotonic() + self.termination_seconds)
            return obj
        self._remove(kind, ns, name)
        return obj

    def finish_deletions(self) -> None:
        """Every terminating pod's kubelet confirms it stopped."""
        with self._lock:
            for key in self._going:
                self._going[key] = 0.0
            self._settle()

    def _settle(self) -> None:
        """Remove pods whose grace period ended; schedule what then fits."""
        now = time.monotonic()
        done = [key for key, deadline in self._going.items() if deadline <= now]
        for ns, name in done:
            del self._going[(ns, name)]
            self._remove("pods", ns, name)
        if done:
            self._schedule_pending()

    def _remove(self, kind: str, ns: str, name: str) -> None:
        obj = self.objects.pop((kind, ns, name))
        if kind != "pods" or not self._gc:
            return
        uid = obj["metadata"]["uid"]
        for key, other in list(self.objects.items()):
            owners = other["metadata"].get("ownerReferences") or []
            if key[1] == ns and any(o.get("uid") == uid for o in owners):
                del self.objects[key]

    def _schedule_pending(self) -> None:
        for (kind, _, _), obj in list(self.objects.items()):
            if kind == "pods" and obj["status"].get("phase") == "Pending":
                self._schedule(obj)

    def _schedule(self, pod: dict[str, Any]) -> None:
        if pod.get("spec", {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return
        verdict = schedule(pod, self.nodes.values(), self._used_by_node())
        if verdict.node is None:
            condition = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": verdict.message,
                "lastTransitionTime": _now(),
            }
            pod["status"] = {**pod["status"], "conditions": [condition]}
            return
        node = self.nodes[verdict.node]
        pod["spec"]["nodeName"] = node.name
        pod["status"] = {
            "phase": "Running",
            "hostIP": node.internal_ip,
            "podIP": f"10.244.0.{next(self._numbers) % 250 + 2}",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "startTime": _now(),
        }

    def _used_by_node(self) -> dict[str, dict[str, Fraction]]:
        used: dict[str, Counter[str]] = {}
        for (kind, _, _), obj in self.objects.items():
            node = obj.get("spec", {}).get("nodeName")
            if kind == "pods" and node and obj["status"].get("phase") not in _ENDED:
                used.setdefault(node, Counter()).update(pod_requests(obj))
        return {node: dict(counts) for node, counts in used.items()}

    def _live_pods(self, ns: str) -> list[dict[str, Any]]:
        """Pods a quota counts: not ended (pkg/quota/v1/evaluator/core/pods.go QuotaV1Pod)."""
        return [
            obj
            for (kind, n, _), obj in self.objects.items()
            if kind == "pods" and n == ns and obj["status"].get("phase") not in _ENDED
        ]

    def _pod(self, name: str, namespace: str = "default") -> dict[str, Any]:
        found = self.find("pods", name, namespace)
        if found is None:
            raise KeyError(f"no pod {name} in {namespace}")
        return found

    def _update_status(self, name: str, **fields: Any) -> None:
        pod = self._pod(name)
        with self._lock:
            pod["status"] = {**pod.get("status", {}), **fields}
            if fields.get("phase") in _ENDED:
                self._schedule_pending()


_ENDED = ("Succeeded", "Failed")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _forbidden(verb: str, kind: str, name: str | None, ns: str | None) -> Reply:
    """RBAC's refusal (kubernetes.io/docs/reference/access-authn-authz/authorization/)."""
    what = f'{kind} "{name}"' if name else kind
    scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    message = (
        f'{what} is forbidden: User "{_USER}" cannot {verb} resource "{kind}" in API group "" '
        f"{scope}"
    )
    return status(403, "Forbidden", message, {"name": name or "", "kind": kind})


def _secret_size(secret: dict[str, Any]) -> int:
    """What ValidateSecret sums: the decoded bytes of every `data` value, after the API
    server has merged `stringData` into `data`."""
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data |= {k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()}
    return sum(len(v) for v in data.values())


def _secret_too_long(name: str) -> Reply:
    detail = f"Too long: may not be more than {MAX_SECRET_SIZE} bytes"
    cause = {"reason": "FieldValueTooLong", "message": detail, "field": "data"}
    details = {"name": name, "kind": "Secret", "causes": [cause]}
    return status(422, "Invalid", f'Secret "{name}" is invalid: data: {detail}', details)


def _invalid(name: str, labels: dict[str, str], subdomain: bool = False) -> str:
    if subdomain and not _DNS_SUBDOMAIN.match(name):
        return (
            f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must "
            "consist of lower case alphanumeric characters, '-' or '.'"
        )
    if not subdomain and not _DNS_LABEL.match(name):
        return (
            f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 label must consist "
            "of lower case alphanumeric characters or '-'"
        )
    bad = [f"{k}={v}" for k, v in labels.items() if not _LABEL_VALUE.match(str(v))]
    return f"metadata.labels: Invalid value: {bad}" if bad else ""


def _allocate(service: dict[str, Any], number: int) -> None:
    spec = service.setdefault("spec", {})
    spec["clusterIP"] = f"10.96.0.{number % 250 + 2}"
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        for offset, port in enumerate(spec.get("ports", [])):
            port["nodePort"] = 30000 + (number * 10 + offset) % 2767


def _handler_for(server: FakeKubeAPIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, reply = server.handle(self.command, self.path, headers, body)
            payload = json.dumps(reply).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its read timeout) before the answer

    return Handler
