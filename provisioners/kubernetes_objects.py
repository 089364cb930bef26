"""The pod, service and bundle Secret that make one replica on Kubernetes.

A replica is a pod that runs the shared boot script, which starts the replica agent
(`restartPolicy: Never`: a replica that dies is replaced by the replica manager, not
restarted in place) plus a service that selects exactly that pod by its launch-token label
and exposes two named ports: `serve` (the replica's) and `agent` (the agent's TLS port).
When the version has a bundle, a Secret `<pod>-bundle` holds it, mounted read-only at
`BUNDLE_DIR`, and the boot config's bundle URL is `file://` to it (`bundle_url`): the pod
reads it from the cluster, with no bucket and no network. Service and Secret name the pod
as their owner, so the cluster's garbage collector removes them with the pod even if
spotserve does not.

A Secret holds at most 1 MiB (Kubernetes docs, "Secrets": "Individual secrets are limited
to 1MiB in size"; the API server's ValidateSecret refuses more than `core.MaxSecretSize`,
1048576 bytes of data), so a larger bundle is refused before anything is created
(`check_bundle_fits`).

The container asks for cpu and memory as both requests and limits (Guaranteed QoS, and
what a namespace with a compute ResourceQuota demands: without limits the API server
refuses the pod, "must specify limits.cpu,limits.memory"), GPUs as limits of the GPU
resource, and GPU pods choose their GPU model by node label (`kubernetes_placement`).
"""

from __future__ import annotations

import base64
import re

from kubernetes import client as k8s

from provisioners.base import TAG_LAUNCH_TOKEN, LaunchRequest
from provisioners.errors import InvalidRequest
from provisioners.kubernetes_placement import GPU_TOLERATIONS, gpu_affinity
from provisioners.kubernetes_settings import KubernetesSettings

ANNOTATION_PORT = "spotserve.dev/port"
ANNOTATION_AGENT_PORT = "spotserve.dev/agent-port"
SERVICE_PORT_NAME = "serve"
AGENT_PORT_NAME = "agent"
BUNDLE_DIR = "/var/run/spotserve/bundle"
BUNDLE_KEY = "bundle.tar.gz"
BUNDLE_VOLUME = "spotserve-bundle"
MAX_SECRET_BYTES = 1024 * 1024
"""`core.MaxSecretSize`: the most data one Secret may hold (summed over its keys, decoded)."""
CONTAINER_LOG = "/tmp/spotserve-replica.log"
_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def meta(obj: k8s.V1Pod | k8s.V1Service | k8s.V1Node | k8s.V1Secret) -> k8s.V1ObjectMeta:
    """The object's metadata; the API server always sends it, the models type it optional."""
    return obj.metadata or k8s.V1ObjectMeta()


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9._-], alphanumeric at both ends)."""
    return _LABEL_BAD.sub("-", text)[:63].strip("._-")


def owner_labels(request: LaunchRequest) -> dict[str, str]:
    return {k: label_value(v) for k, v in request.ownership_tags().items()}


def bundle_secret_name(name: str) -> str:
    return f"{name}-bundle"


def bundle_url(request: LaunchRequest) -> str | None:
    """Where the agent in the pod reads the bundle: the mounted Secret's file."""
    return f"file://{BUNDLE_DIR}/{BUNDLE_KEY}" if request.bundle is not None else None


def check_bundle_fits(request: LaunchRequest) -> None:
    """Refuse a bundle no Secret can hold, naming its size, the limit and what to do."""
    if request.bundle is None or request.bundle.size <= MAX_SECRET_BYTES:
        return
    raise InvalidRequest(
        f"the bundle (workdir and file_mounts) is {request.bundle.size} bytes packed, but "
        f"Kubernetes replicas get it in a Secret, which holds at most {MAX_SECRET_BYTES} "
        "bytes (1 MiB); move the large files to a bucket and mount it (file_mounts: "
        "/path: s3://... or gs://...), or bake them into the image (resources.image_id)",
        location=request.location.key,
        code="BundleTooLarge",
    )


def check_ports(request: LaunchRequest, agent_port: int) -> None:
    """The replica's port and the agent's share the pod and its service: they must differ
    (the API server refuses a service with two ports alike, "Duplicate value")."""
    if request.port == agent_port:
        raise InvalidRequest(
            f"the service port {request.port} is also the replica agent's port; use another "
            "port in the service YAML, or set SERVE_AGENT_PORT to another port",
            location=request.location.key,
        )


def pod_manifest(
    request: LaunchRequest,
    name: str,
    image: str,
    script: str,
    settings: KubernetesSettings,
    agent_port: int,
) -> k8s.V1Pod:
    """Raises `UnknownGpuModel` for a GPU whose node label is not known."""
    accelerator = accelerator_of(request.offer.instance_type)
    container = k8s.V1Container(
        name="replica",
        image=image,
        command=["/bin/bash", "-c", script],
        env=[k8s.V1EnvVar(name="SERVE_REPLICA_LOG", value=CONTAINER_LOG)],
        ports=[
            k8s.V1ContainerPort(container_port=request.port, name=SERVICE_PORT_NAME),
            k8s.V1ContainerPort(container_port=agent_port, name=AGENT_PORT_NAME),
        ],
        resources=container_resources(request, settings),
    )
    spec = k8s.V1PodSpec(restart_policy="Never", containers=[container])
    if request.bundle is not None:
        _mount_bundle(spec, container, name)
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
            annotations={
                ANNOTATION_PORT: str(request.port),
                ANNOTATION_AGENT_PORT: str(agent_port),
            },
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


def _mount_bundle(spec: k8s.V1PodSpec, container: k8s.V1Container, name: str) -> None:
    """The bundle Secret as a read-only volume at `BUNDLE_DIR` (the kubelet waits for the
    Secret, created right after the pod, before it starts the container)."""
    source = k8s.V1SecretVolumeSource(
        secret_name=bundle_secret_name(name),
        items=[k8s.V1KeyToPath(key=BUNDLE_KEY, path=BUNDLE_KEY)],
    )
    spec.volumes = [k8s.V1Volume(name=BUNDLE_VOLUME, secret=source)]
    container.volume_mounts = [
        k8s.V1VolumeMount(name=BUNDLE_VOLUME, mount_path=BUNDLE_DIR, read_only=True)
    ]


def bundle_secret_manifest(
    request: LaunchRequest, name: str, pod_uid: str, bundle: bytes
) -> k8s.V1Secret:
    """The bundle's bytes (base64 in `data`, as the API wants), owned by the pod."""
    return k8s.V1Secret(
        api_version="v1",
        kind="Secret",
        type="Opaque",
        immutable=True,
        metadata=k8s.V1ObjectMeta(
            name=bundle_secret_name(name),
            labels=owner_labels(request),
            owner_references=[_owned_by(name, pod_uid)],
        ),
        data={BUNDLE_KEY: base64.b64encode(bundle).decode()},
    )


def service_manifest(
    request: LaunchRequest, name: str, pod_uid: str, service_type: str, agent_port: int
) -> k8s.V1Service:
    """The replica's port and the agent's, each by name (a NodePort service gives each a
    node port of its own)."""
    ports = [
        k8s.V1ServicePort(name=SERVICE_PORT_NAME, port=request.port, target_port=request.port),
        k8s.V1ServicePort(name=AGENT_PORT_NAME, port=agent_port, target_port=agent_port),
    ]
    return k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=k8s.V1ObjectMeta(
            name=name,
            labels=owner_labels(request),
            owner_references=[_owned_by(name, pod_uid)],
        ),
        spec=k8s.V1ServiceSpec(
            type=service_type,
            selector={TAG_LAUNCH_TOKEN: label_value(request.launch_token)},
            ports=ports,
        ),
    )


def _owned_by(pod_name: str, pod_uid: str) -> k8s.V1OwnerReference:
    return k8s.V1OwnerReference(api_version="v1", kind="Pod", name=pod_name, uid=pod_uid)


def accelerator_of(instance_type: str) -> tuple[str, int] | None:
    """('A100', 8) from an offer's 'A100:8'; None for 'cpu'."""
    name, _, count = instance_type.partition(":")
    return (name, int(count)) if name and count.isdigit() else None


def _amount(text: str | None) -> str:
    return str(text or "").strip().rstrip("+").strip()
