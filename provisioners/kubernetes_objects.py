"""The pod and service that make one replica on Kubernetes, and how to read them back.

A replica is a pod that runs the shared startup script (`restartPolicy: Never`: a replica
that dies is replaced by the replica manager, not restarted in place) plus a service that
selects exactly that pod by its launch-token label. The service names the pod as its owner,
so the cluster's garbage collector removes it with the pod even if spotserve does not.

Preemption is read from what the kubelet and the API server record on the pod: a
`DisruptionTarget` condition (Kubernetes >= 1.26: scheduler preemption, eviction API, taint
manager, node shutdown, pod GC) or a failed pod whose reason is an eviction or node loss.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client as k8s

from policies.types import Location
from provisioners.base import (
    TAG_LAUNCH_TOKEN,
    TAG_REPLICA_ID,
    TAG_SERVICE,
    Instance,
    InstanceState,
    LaunchRequest,
)

ANNOTATION_PORT = "spotserve.dev/port"
CONTAINER_LOG = "/tmp/spotserve-replica.log"
PREEMPTION_REASONS = frozenset(
    {"Evicted", "Preempting", "NodeLost", "Shutdown", "NodeShutdown", "Terminated"}
)
_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def meta(obj: k8s.V1Pod | k8s.V1Service) -> k8s.V1ObjectMeta:
    """The object's metadata; the API server always sends it, the models type it optional."""
    return obj.metadata or k8s.V1ObjectMeta()


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9._-], alphanumeric at both ends)."""
    return _LABEL_BAD.sub("-", text)[:63].strip("._-")


def owner_labels(request: LaunchRequest) -> dict[str, str]:
    return {k: label_value(v) for k, v in request.ownership_tags().items()}


def pod_manifest(
    request: LaunchRequest, name: str, image: str, script: str, gpu_resource: str
) -> k8s.V1Pod:
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    accelerator = accelerator_of(request.offer.instance_type)
    if accelerator:
        limits[gpu_resource] = str(accelerator[1])
    if request.resources.cpus:
        requests["cpu"] = request.resources.cpus.rstrip("+")
    if request.resources.memory:
        requests["memory"] = f"{request.resources.memory.rstrip('+')}Gi"
    container = k8s.V1Container(
        name="replica",
        image=image,
        command=["/bin/bash", "-c", script],
        env=[k8s.V1EnvVar(name="SERVE_REPLICA_LOG", value=CONTAINER_LOG)],
        ports=[k8s.V1ContainerPort(container_port=request.port, name="serve")],
        resources=k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None),
    )
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=k8s.V1ObjectMeta(
            name=name,
            labels=owner_labels(request),
            annotations={ANNOTATION_PORT: str(request.port)},
        ),
        spec=k8s.V1PodSpec(restart_policy="Never", containers=[container]),
    )


def service_manifest(
    request: LaunchRequest, name: str, pod_uid: str, service_type: str
) -> k8s.V1Service:
    return k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=k8s.V1ObjectMeta(
            name=name,
            labels=owner_labels(request),
            owner_references=[
                k8s.V1OwnerReference(api_version="v1", kind="Pod", name=name, uid=pod_uid)
            ],
        ),
        spec=k8s.V1ServiceSpec(
            type=service_type,
            selector={TAG_LAUNCH_TOKEN: label_value(request.launch_token)},
            ports=[k8s.V1ServicePort(name="serve", port=request.port, target_port=request.port)],
        ),
    )


def accelerator_of(instance_type: str) -> tuple[str, int] | None:
    """('A100', 8) from an offer's 'A100:8'; None for 'cpu'."""
    name, _, count = instance_type.partition(":")
    return (name, int(count)) if name and count.isdigit() else None


def pod_state(pod: k8s.V1Pod) -> tuple[InstanceState, str]:
    status = pod.status or k8s.V1PodStatus()
    disruption = _condition(pod, "DisruptionTarget")
    if disruption is not None and disruption.status == "True":
        return InstanceState.PREEMPTED, f"{disruption.reason}: {disruption.message or ''}".strip()
    if status.phase == "Failed" and status.reason in PREEMPTION_REASONS:
        return InstanceState.PREEMPTED, f"{status.reason}: {status.message or ''}".strip()
    if meta(pod).deletion_timestamp:
        return InstanceState.TERMINATED, "being deleted"
    if status.phase == "Pending":
        return InstanceState.PENDING, _pending_detail(pod)
    if status.phase == "Running":
        return InstanceState.RUNNING, "running"
    if status.phase in ("Succeeded", "Failed"):
        return InstanceState.TERMINATED, f"pod {status.phase.lower()}: {status.message or ''}"
    return InstanceState.UNKNOWN, f"pod phase {status.phase!r}"


def to_instance(
    pod: k8s.V1Pod, service: k8s.V1Service | None, location: Location, service_type: str
) -> Instance:
    labels = meta(pod).labels or {}
    state, detail = pod_state(pod)
    address, port = _endpoint(pod, service, service_type)
    return Instance(
        instance_id=str(meta(pod).name),
        location=location,
        spot=False,
        state=state,
        service=labels.get(TAG_SERVICE, ""),
        replica_id=int(labels.get(TAG_REPLICA_ID, "-1") or -1),
        launch_token=labels.get(TAG_LAUNCH_TOKEN, ""),
        address=address,
        port=port,
        detail=detail,
    )


def _endpoint(
    pod: k8s.V1Pod, service: k8s.V1Service | None, service_type: str
) -> tuple[str | None, int | None]:
    """Where the controller reaches the replica, for the configured service type."""
    annotations = meta(pod).annotations or {}
    port_text = annotations.get(ANNOTATION_PORT, "")
    port = int(port_text) if port_text.isdigit() else None
    if service is None or not service.spec:
        return None, port
    if service_type == "NodePort":
        node_port = service.spec.ports[0].node_port if service.spec.ports else None
        return (pod.status.host_ip if pod.status else None) or None, node_port
    if service_type == "LoadBalancer":
        ingress = _first(_get(service, "status", "load_balancer", "ingress"))
        return (ingress.ip or ingress.hostname) if ingress else None, port
    return service.spec.cluster_ip or None, port


def _pending_detail(pod: k8s.V1Pod) -> str:
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.status == "False":
        return f"{scheduled.reason}: {scheduled.message or ''}".strip()
    return "pending"


def _condition(pod: k8s.V1Pod, kind: str) -> k8s.V1PodCondition | None:
    conditions = (pod.status.conditions if pod.status else None) or []
    return next((c for c in conditions if c.type == kind), None)


def _get(obj: Any, *path: str) -> Any:
    for attr in path:
        obj = getattr(obj, attr, None) if obj is not None else None
    return obj


def _first(items: list[Any] | None) -> Any:
    return items[0] if items else None
