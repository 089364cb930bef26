"""The pod and service that make one replica on Kubernetes.

A replica is a pod that runs the shared boot script, which starts the replica agent
(`restartPolicy: Never`: a replica that dies is replaced by the replica manager, not
restarted in place) plus a service that selects exactly that pod by its launch-token label.
The service names the pod as its owner, so the cluster's garbage collector removes it with
the pod even if spotserve does not.

The container asks for cpu and memory as both requests and limits (Guaranteed QoS, and
what a namespace with a compute ResourceQuota demands: without limits the API server
refuses the pod, "must specify limits.cpu,limits.memory"), GPUs as limits of the GPU
resource, and GPU pods choose their GPU model by node label (`kubernetes_placement`).
"""

from __future__ import annotations

import re

from kubernetes import client as k8s

from provisioners.base import TAG_LAUNCH_TOKEN, LaunchRequest
from provisioners.kubernetes_placement import GPU_TOLERATIONS, gpu_affinity
from provisioners.kubernetes_settings import KubernetesSettings

ANNOTATION_PORT = "spotserve.dev/port"
CONTAINER_LOG = "/tmp/spotserve-replica.log"
_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def meta(obj: k8s.V1Pod | k8s.V1Service | k8s.V1Node) -> k8s.V1ObjectMeta:
    """The object's metadata; the API server always sends it, the models type it optional."""
    return obj.metadata or k8s.V1ObjectMeta()


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9._-], alphanumeric at both ends)."""
    return _LABEL_BAD.sub("-", text)[:63].strip("._-")


def owner_labels(request: LaunchRequest) -> dict[str, str]:
    return {k: label_value(v) for k, v in request.ownership_tags().items()}


def pod_manifest(
    request: LaunchRequest, name: str, image: str, script: str, settings: KubernetesSettings
) -> k8s.V1Pod:
    """Raises `UnknownGpuModel` for a GPU whose node label is not known."""
    accelerator = accelerator_of(request.offer.instance_type)
    container = k8s.V1Container(
        name="replica",
        image=image,
        command=["/bin/bash", "-c", script],
        env=[k8s.V1EnvVar(name="SERVE_REPLICA_LOG", value=CONTAINER_LOG)],
        ports=[k8s.V1ContainerPort(container_port=request.port, name="serve")],
        resources=container_resources(request, settings),
    )
    spec = k8s.V1PodSpec(restart_policy="Never", containers=[container])
    if accelerator:
        spec.affinity = gpu_affinity(accelerator[0], settings.gpu_label)
        spec.tolerations = [*GPU_TOLERATIONS, *settings.tolerations]
    elif settings.tolerations:
        spec.tolerations = list(settings.tolerations)
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=k8s.V1ObjectMeta(
            name=name,
            labels=owner_labels(request),
            annotations={ANNOTATION_PORT: str(request.port)},
        ),
        spec=spec,
    )


def container_resources(
    request: LaunchRequest, settings: KubernetesSettings
) -> k8s.V1ResourceRequirements:
    """The YAML's `cpus` and `memory` (GiB; '8+' counts as 8), else the settings' defaults,
    as requests equal to limits; the offer's GPUs as the GPU resource."""
    wanted = request.resources
    amounts = {
        "cpu": _amount(wanted.cpus) or settings.cpu,
        "memory": f"{_amount(wanted.memory)}Gi" if _amount(wanted.memory) else settings.memory,
    }
    accelerator = accelerator_of(request.offer.instance_type)
    if accelerator:
        amounts[settings.gpu_resource] = str(accelerator[1])
    return k8s.V1ResourceRequirements(requests=dict(amounts), limits=dict(amounts))


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


def _amount(text: str | None) -> str:
    return str(text or "").strip().rstrip("+").strip()
