"""A small Kubernetes API server: the core/v1 pod and service calls the adapter makes.

No real API server can run here (kind/k3d need a Docker engine, envtest downloads
binaries), so this answers the REST calls of the official client over real HTTP: create,
read, delete and list (with equality label selectors) pods and services in known
namespaces, with the API server's `Status` bodies for 401/403/404/409/422. Pods start
Pending; the test moves them (run, fail, evict, preempt) the way the kubelet and the
control plane would record it. Implements `FakeCloudControl` of the contract suite.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from policies.types import Location
from tests.fakes.json_http import LoopbackServer

TOKEN = "fake-bearer-token"
_PATH = re.compile(
    r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<kind>pods|services)(?:/(?P<name>[^/]+))?$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
Reply = tuple[int, dict[str, Any]]


def status(code: int, reason: str, message: str) -> Reply:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return code, body


class FakeKubeAPIServer:
    def __init__(self, namespaces: tuple[str, ...] = ("default",)):
        self.namespaces = set(namespaces)
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self._quota: set[str] = set()
        self._forbidden: set[str] = set()
        self._reject = False
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._http = LoopbackServer(_handler_for(self))

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
            "Kubernetes never refuses a pod for lack of capacity: it accepts it and leaves it "
            "Pending/Unschedulable (see test_unschedulable_pod_is_pending_with_the_reason)"
        )

    def exceed_quota(self, location: Location) -> None:
        self._quota.add(location.zone)

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

    def forbid(self, verb: str) -> None:
        self._forbidden.add(verb)

    def run(self, name: str, host_ip: str = "192.0.2.10") -> None:
        self._update_status(name, phase="Running", hostIP=host_ip, podIP="10.244.0.7")

    def evict(self, name: str) -> None:
        self._update_status(
            name, phase="Failed", reason="Evicted", message="The node was low on resource: memory."
        )

    def fail(self, name: str) -> None:
        self._update_status(name, phase="Failed", message="container exited with code 1")

    def unschedulable(self, name: str, message: str) -> None:
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
        }
        self._update_status(name, phase="Pending", conditions=[condition])

    def find(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        with self._lock:
            return self.objects.get((kind, namespace, name))

    def clear(self) -> None:
        with self._lock:
            self.objects.clear()
            self.created.clear()
            self._quota.clear()
            self._forbidden.clear()
            self._reject = False

    # The API.

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if headers.get("authorization") != f"Bearer {TOKEN}" or self._reject:
            return status(401, "Unauthorized", "Unauthorized")
        url = urlsplit(path)
        match = _PATH.match(url.path)
        if not match:
            return status(404, "NotFound", "the server could not find the requested resource")
        ns, kind, name = match["ns"], match["kind"], match["name"]
        verb = {"GET": "get" if name else "list", "POST": "create", "DELETE": "delete"}[method]
        if verb in self._forbidden:
            return status(
                403,
                "Forbidden",
                f'{kind} is forbidden: User "system:serviceaccount:default:ci" cannot {verb} '
                f'resource "{kind}" in API group "" in the namespace "{ns}"',
            )
        if ns not in self.namespaces:
            return status(404, "NotFound", f'namespaces "{ns}" not found')
        with self._lock:
            if verb == "create":
                return self._create(ns, kind, json.loads(body or b"{}"))
            if verb == "list":
                return self._list(ns, kind, parse_qs(url.query).get("labelSelector", [""])[0])
            found = self.objects.get((kind, ns, name or ""))
            if found is None:
                return status(404, "NotFound", f'{kind} "{name}" not found')
            if verb == "delete":
                del self.objects[(kind, ns, name or "")]
            return 200, found

    def _create(self, ns: str, kind: str, obj: dict[str, Any]) -> Reply:
        meta = obj.setdefault("metadata", {})
        name = str(meta.get("name", ""))
        problem = _invalid(name, meta.get("labels") or {})
        if problem:
            return status(422, "Invalid", f'{obj.get("kind", kind)} "{name}" is invalid: {problem}')
        if kind == "pods" and ns in self._quota:
            return status(
                403,
                "Forbidden",
                f'pods "{name}" is forbidden: exceeded quota: gpu-quota, requested: '
                "nvidia.com/gpu=1, used: nvidia.com/gpu=4, limited: nvidia.com/gpu=4",
            )
        if (kind, ns, name) in self.objects:
            return status(409, "AlreadyExists", f'{kind} "{name}" already exists')
        number = next(self._numbers)
        meta.update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            resourceVersion=str(number),
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        if kind == "pods":
            obj["status"] = {"phase": "Pending"}
        else:
            _allocate(obj, number)
        self.objects[(kind, ns, name)] = obj
        self.created.append(obj)
        return 201, obj

    def _list(self, ns: str, kind: str, selector: str) -> Reply:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        items = [
            obj
            for (k, n, _), obj in self.objects.items()
            if k == kind
            and n == ns
            and all((obj["metadata"].get("labels") or {}).get(a) == b for a, b in wanted.items())
        ]
        list_kind = "PodList" if kind == "pods" else "ServiceList"
        return 200, {"kind": list_kind, "apiVersion": "v1", "metadata": {}, "items": items}

    def _pod(self, name: str, namespace: str = "default") -> dict[str, Any]:
        found = self.find("pods", name, namespace)
        if found is None:
            raise KeyError(f"no pod {name} in {namespace}")
        return found

    def _update_status(self, name: str, **fields: Any) -> None:
        pod = self._pod(name)
        with self._lock:
            pod["status"] = {**pod.get("status", {}), **fields}


def _invalid(name: str, labels: dict[str, str]) -> str:
    if not _DNS_LABEL.match(name):
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
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
