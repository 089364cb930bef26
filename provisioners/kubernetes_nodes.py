"""Where the controller reaches a replica and its agent, for each service type.

The service exposes two named ports, `serve` and `agent`; the agent is reached at the same
address as the replica, on the `agent` port's own port (or node port). A service without an
`agent` port (made before it existed) leaves the agent unreachable (None).

    ClusterIP     the service's cluster IP and the replica port: the controller runs in the
                  cluster (the default there)
    LoadBalancer  the load balancer's ingress IP or hostname and the replica port
    NodePort      a node's address and the service's node port. The pod's `hostIP` is the
                  node's InternalIP, which a controller outside the cluster's network never
                  reaches, so the address is, in order: `SERVE_KUBERNETES_NODE_ADDRESS`
                  (any node, or a load balancer in front of them: kube-proxy opens a
                  NodePort on every node, kubernetes.io/docs/concepts/services-networking/
                  service/#type-nodeport), the node's ExternalIP (Node status.addresses,
                  kubernetes.io/docs/reference/node/node-status/#addresses), else its
                  InternalIP with a note in the instance's detail.

Node addresses rarely change, so they are cached per node name for `ttl` seconds: a list
of N pods costs at most one node read per node, not N per tick. A node that cannot be read
(RBAC lacks `get nodes`, node gone) falls back to the pod's hostIP and is cached the same;
a passing failure (timeout, 5xx) falls back without being cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from provisioners.kubernetes_objects import AGENT_PORT_NAME, SERVICE_PORT_NAME

NODE_ADDRESS_TTL_SECONDS = 300.0
INTERNAL_ONLY_NOTE = (
    "reached at the node's internal IP {ip}: a controller outside the cluster's network "
    "cannot reach it; set SERVE_KUBERNETES_NODE_ADDRESS, or use "
    "SERVE_KUBERNETES_SERVICE_TYPE=LoadBalancer"
)


@dataclass(frozen=True)
class NodeAddresses:
    external: str | None = None
    internal: str | None = None
    problem: str = ""
    """Why the node's addresses are unknown (it could not be read), '' if they are."""
    lasting: bool = True
    """Worth caching: False for a passing failure (timeout, 5xx), read again next time."""

    @classmethod
    def of(cls, node: k8s.V1Node) -> NodeAddresses:
        addresses = (node.status.addresses if node.status else None) or []
        found = {a.type: a.address for a in addresses}
        return cls(external=found.get("ExternalIP"), internal=found.get("InternalIP"))


@dataclass(frozen=True)
class Endpoint:
    address: str | None
    port: int | None
    note: str = ""
    agent_port: int | None = None


class NodeAddressCache:
    """Node name -> addresses, read through `read` at most once per `ttl` seconds."""

    def __init__(
        self,
        read: Callable[[str], NodeAddresses],
        ttl: float = NODE_ADDRESS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[float, NodeAddresses]] = {}
        self._lock = threading.Lock()

    def addresses(self, node: str) -> NodeAddresses:
        now = self._clock()
        with self._lock:
            cached = self._known.get(node)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        found = self._read(node)
        if found.lasting:
            with self._lock:
                self._known[node] = (now, found)
        return found


def endpoint(
    pod: k8s.V1Pod,
    service: k8s.V1Service | None,
    service_type: str,
    port: int | None,
    node_address: Callable[[str], NodeAddresses],
    configured: str | None,
) -> Endpoint:
    """Where the controller reaches the replica; `port` is the replica's own port."""
    if service is None or not service.spec:
        return Endpoint(None, port)
    if service_type == "NodePort":
        return _node_port(pod, service, node_address, configured)
    agent = _named(service, AGENT_PORT_NAME)
    agent_port = agent.port if agent else None
    if service_type == "LoadBalancer":
        ingress = _first(_get(service, "status", "load_balancer", "ingress"))
        address = (ingress.ip or ingress.hostname) if ingress else None
        return Endpoint(address, port, agent_port=agent_port)
    return Endpoint(service.spec.cluster_ip or None, port, agent_port=agent_port)


def _node_port(
    pod: k8s.V1Pod,
    service: k8s.V1Service,
    node_address: Callable[[str], NodeAddresses],
    configured: str | None,
) -> Endpoint:
    ports = (service.spec.ports if service.spec else None) or []
    serve = _named(service, SERVICE_PORT_NAME) or _first(ports)
    agent = _named(service, AGENT_PORT_NAME)
    node_port = serve.node_port if serve else None
    agent_port = agent.node_port if agent else None
    node = pod.spec.node_name if pod.spec else None
    if not node:
        return Endpoint(None, node_port, agent_port=agent_port)  # not scheduled yet
    if configured:
        return Endpoint(configured, node_port, agent_port=agent_port)
    found = node_address(node)
    if found.external:
        return Endpoint(found.external, node_port, agent_port=agent_port)
    internal = found.internal or (pod.status.host_ip if pod.status else None)
    if not internal:
        return Endpoint(None, node_port, agent_port=agent_port)
    note = INTERNAL_ONLY_NOTE.format(ip=internal)
    note = f"{found.problem}; {note}" if found.problem else note
    return Endpoint(internal, node_port, note, agent_port)


def _named(service: k8s.V1Service, name: str) -> k8s.V1ServicePort | None:
    ports = (service.spec.ports if service.spec else None) or []
    return next((p for p in ports if p.name == name), None)


def _get(obj: Any, *path: str) -> Any:
    for attr in path:
        obj = getattr(obj, attr, None) if obj is not None else None
    return obj


def _first(items: list[Any] | None) -> Any:
    return items[0] if items else None
