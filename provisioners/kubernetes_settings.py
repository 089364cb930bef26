"""What the Kubernetes adapter reads from the environment, read once (constructors do no I/O).

SERVE_KUBERNETES_NAMESPACE        namespace (default: the context's, else `default`)
SERVE_KUBERNETES_IMAGE            image when the YAML gives no `image_id`
SERVE_KUBERNETES_SERVICE_TYPE     ClusterIP (default in the cluster) / NodePort / LoadBalancer
SERVE_KUBERNETES_HOURLY_PRICE     the cluster's price per replica-hour (default 0)
SERVE_KUBERNETES_GPU_RESOURCE     extended resource of a GPU (default nvidia.com/gpu)
SERVE_KUBERNETES_GPU_LABEL        own GPU node label: `key`, `key=value` or `none`
SERVE_KUBERNETES_TOLERATIONS      extra taints to tolerate, `key[=value]:Effect,...`
SERVE_KUBERNETES_NODE_ADDRESS     address the controller reaches NodePorts at
SERVE_KUBERNETES_CPU              cpu request and limit when the YAML gives no `cpus`
SERVE_KUBERNETES_MEMORY           memory request and limit when the YAML gives no `memory`
SERVE_KUBERNETES_UNSCHEDULABLE_GRACE_SECONDS
                                  how long a pod may stay Unschedulable before it is
                                  reported REFUSED (default 0; raise it where a node
                                  autoscaler adds nodes for pending pods)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kubernetes import client as k8s

from provisioners.kubernetes_placement import GpuLabel, parse_tolerations

DEFAULT_IMAGE = "python:3.11-slim"
DEFAULT_CPU = "2"
DEFAULT_MEMORY = "8Gi"


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str | None = None
    image: str = DEFAULT_IMAGE
    service_type: str | None = None
    hourly_price: float = 0.0
    gpu_resource: str = "nvidia.com/gpu"
    gpu_label: GpuLabel | None = None
    tolerations: tuple[k8s.V1Toleration, ...] = field(default=(), compare=False)
    node_address: str | None = None
    cpu: str = DEFAULT_CPU
    memory: str = DEFAULT_MEMORY
    unschedulable_grace_seconds: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KubernetesSettings:
        """Raises ValueError for a malformed value, naming the variable."""
        return cls(
            namespace=env.get("SERVE_KUBERNETES_NAMESPACE") or None,
            image=env.get("SERVE_KUBERNETES_IMAGE") or DEFAULT_IMAGE,
            service_type=env.get("SERVE_KUBERNETES_SERVICE_TYPE") or None,
            hourly_price=_number(env, "SERVE_KUBERNETES_HOURLY_PRICE", 0.0),
            gpu_resource=env.get("SERVE_KUBERNETES_GPU_RESOURCE") or "nvidia.com/gpu",
            gpu_label=GpuLabel.parse(env.get("SERVE_KUBERNETES_GPU_LABEL", "")),
            tolerations=parse_tolerations(env.get("SERVE_KUBERNETES_TOLERATIONS", "")),
            node_address=env.get("SERVE_KUBERNETES_NODE_ADDRESS") or None,
            cpu=env.get("SERVE_KUBERNETES_CPU") or DEFAULT_CPU,
            memory=env.get("SERVE_KUBERNETES_MEMORY") or DEFAULT_MEMORY,
            unschedulable_grace_seconds=_number(
                env, "SERVE_KUBERNETES_UNSCHEDULABLE_GRACE_SECONDS", 0.0
            ),
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name) or ""
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
