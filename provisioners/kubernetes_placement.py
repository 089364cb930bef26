"""Which nodes a replica pod may land on: its GPU model, and the GPU taints it tolerates.

`limits: {nvidia.com/gpu: N}` alone lets the scheduler put an `A100:8` pod on eight GPUs of
any model. The model is chosen by node label instead, with one required nodeSelectorTerm
per labelling scheme a cluster may use; the terms are ORed by the scheduler, so a node
matches if any scheme names the model ("If you specify multiple terms in
nodeSelectorTerms, the Pod can be scheduled onto a node if one of the specified terms can
be satisfied", kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/):

    cloud.google.com/gke-accelerator   GKE sets it on every GPU node ("Run GPUs in GKE
                                       Standard node pools", section "Consuming multiple
                                       GPU types"; accelerator type names from the same
                                       page: nvidia-tesla-t4, nvidia-tesla-a100,
                                       nvidia-a100-80gb, nvidia-l4, nvidia-h100-80gb,
                                       nvidia-h100-mega-80gb, nvidia-h200-141gb,
                                       nvidia-b200)
    nvidia.com/gpu.product             NVIDIA GPU feature discovery (GPU operator): the
                                       NVML device name with spaces turned into '-'
                                       (k8s-device-plugin internal/lm/resource.go
                                       productLabel), e.g. NVIDIA-A100-SXM4-80GB, Tesla-T4;
                                       time-sliced GPUs get '-SHARED' and are not matched
    karpenter.k8s.aws/instance-gpu-name  Karpenter on EKS, lowercase names (EKS best
                                       practices, "Schedule workloads with GPU requirements
                                       using Well-Known labels")

`SERVE_KUBERNETES_GPU_LABEL` replaces the table for clusters labelled their own way:
`key` (value: the GPU name in lowercase, e.g. `a100-80gb`), `key=value` (that exact label
for every GPU replica: a cluster with one GPU pool), or `none` (no model selection: any
GPU, as before).

Tolerations, for GPU pods only (a CPU pod must stay off GPU nodes: that is what the taints
are for): `nvidia.com/gpu` with any value (GKE adds `nvidia.com/gpu=present:NoSchedule`
to GPU pools in mixed clusters, same GKE page, "Taint a GPU node pool"; EKS/Karpenter GPU
pools conventionally use `nvidia.com/gpu=true:NoSchedule`) and AKS's documented GPU pool
taint `sku=gpu:NoSchedule` (learn.microsoft.com/azure/aks/use-node-taints and
.../operator-best-practices-advanced-scheduler: AKS does not add the toleration for you,
unlike GKE's ExtendedResourceToleration admission, Azure/AKS issue #1449). The taint of
AKS spot pools, `kubernetes.azure.com/scalesetpriority=spot:NoSchedule`, is deliberately
NOT tolerated: the cluster is offered as on-demand capacity, and an on-demand fallback
must not land on evictable VMs. Further taints: `SERVE_KUBERNETES_TOLERATIONS`, in
`kubectl taint` syntax (`key[=value]:Effect`, comma-separated).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubernetes import client as k8s

GKE_ACCELERATOR = "cloud.google.com/gke-accelerator"
GFD_PRODUCT = "nvidia.com/gpu.product"
KARPENTER_GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
NO_GPU_LABEL = "none"

GPU_NODE_LABELS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "T4": {
        GKE_ACCELERATOR: ("nvidia-tesla-t4",),
        GFD_PRODUCT: ("Tesla-T4",),
        KARPENTER_GPU_NAME: ("t4",),
    },
    "P4": {GKE_ACCELERATOR: ("nvidia-tesla-p4",), GFD_PRODUCT: ("Tesla-P4",)},
    "P100": {GKE_ACCELERATOR: ("nvidia-tesla-p100",), GFD_PRODUCT: ("Tesla-P100-PCIE-16GB",)},
    "V100": {
        GKE_ACCELERATOR: ("nvidia-tesla-v100",),
        GFD_PRODUCT: (
            "Tesla-V100-SXM2-16GB",
            "Tesla-V100-SXM2-32GB",
            "Tesla-V100-PCIE-16GB",
            "Tesla-V100-PCIE-32GB",
        ),
        KARPENTER_GPU_NAME: ("v100",),
    },
    "A10": {GFD_PRODUCT: ("NVIDIA-A10",)},
    "A10G": {GFD_PRODUCT: ("NVIDIA-A10G",), KARPENTER_GPU_NAME: ("a10g",)},
    "L4": {
        GKE_ACCELERATOR: ("nvidia-l4",),
        GFD_PRODUCT: ("NVIDIA-L4",),
        KARPENTER_GPU_NAME: ("l4",),
    },
    "L40S": {GFD_PRODUCT: ("NVIDIA-L40S",), KARPENTER_GPU_NAME: ("l40s",)},
    "A100": {
        GKE_ACCELERATOR: ("nvidia-tesla-a100",),
        GFD_PRODUCT: ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"),
        # Karpenter names p4d (40 GB) and p4de (80 GB) alike: an A100 request may get 80 GB.
        KARPENTER_GPU_NAME: ("a100",),
    },
    "A100-80GB": {
        GKE_ACCELERATOR: ("nvidia-a100-80gb",),
        GFD_PRODUCT: ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"),
    },
    "H100": {
        GKE_ACCELERATOR: ("nvidia-h100-80gb", "nvidia-h100-mega-80gb"),
        GFD_PRODUCT: ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"),
        KARPENTER_GPU_NAME: ("h100",),
    },
    "H200": {
        GKE_ACCELERATOR: ("nvidia-h200-141gb",),
        GFD_PRODUCT: ("NVIDIA-H200", "NVIDIA-H200-141GB-HBM3e"),
        KARPENTER_GPU_NAME: ("h200",),
    },
    "B200": {
        GKE_ACCELERATOR: ("nvidia-b200",),
        GFD_PRODUCT: ("NVIDIA-B200",),
        KARPENTER_GPU_NAME: ("b200",),
    },
}
"""GPU name (as the catalog and the YAML spell it) -> label key -> values naming it."""

GPU_TOLERATIONS: tuple[k8s.V1Toleration, ...] = (
    k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),
    k8s.V1Toleration(key="sku", operator="Equal", value="gpu", effect="NoSchedule"),
)


@dataclass(frozen=True)
class GpuLabel:
    """The operator's own GPU label (`SERVE_KUBERNETES_GPU_LABEL`); `value` None means
    "the GPU name in lowercase"; `key` == "none" turns model selection off."""

    key: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> GpuLabel | None:
        text = text.strip()
        if not text:
            return None
        key, sep, value = text.partition("=")
        return cls(key.strip(), value.strip() if sep else None)


class UnknownGpuModel(ValueError):
    """No label scheme is known for this GPU name and none is configured."""


def gpu_affinity(gpu: str, override: GpuLabel | None) -> k8s.V1Affinity | None:
    """Required node affinity choosing nodes with GPUs of model `gpu`, or None for no
    constraint (`SERVE_KUBERNETES_GPU_LABEL=none`). Raises `UnknownGpuModel`."""
    if override is not None:
        if override.key == NO_GPU_LABEL:
            return None
        labels: Mapping[str, tuple[str, ...]] = {override.key: (override.value or gpu.lower(),)}
    else:
        labels = GPU_NODE_LABELS.get(gpu.upper(), {})
    if not labels:
        known = ", ".join(sorted(GPU_NODE_LABELS))
        raise UnknownGpuModel(
            f"no node label is known for GPU {gpu!r} (known: {known}); set "
            "SERVE_KUBERNETES_GPU_LABEL to the label your GPU nodes carry (key or key=value), "
            "or to 'none' to accept any GPU model"
        )
    terms = [
        k8s.V1NodeSelectorTerm(
            match_expressions=[
                k8s.V1NodeSelectorRequirement(key=key, operator="In", values=list(values))
            ]
        )
        for key, values in labels.items()
    ]
    required = k8s.V1NodeSelector(node_selector_terms=terms)
    return k8s.V1Affinity(
        node_affinity=k8s.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=required
        )
    )


def parse_tolerations(text: str) -> tuple[k8s.V1Toleration, ...]:
    """Tolerations for taints written as `kubectl taint` writes them: `key[=value]:Effect`,
    comma-separated. Raises ValueError on a malformed entry."""
    tolerations = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        pair, sep, effect = entry.rpartition(":")
        key, has_value, value = pair.partition("=")
        if not sep or not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(
                f"SERVE_KUBERNETES_TOLERATIONS entry {entry!r} is not key[=value]:Effect "
                "(Effect: NoSchedule, PreferNoSchedule or NoExecute)"
            )
        tolerations.append(
            k8s.V1Toleration(
                key=key,
                operator="Equal" if has_value else "Exists",
                value=value if has_value else None,
                effect=effect,
            )
        )
    return tuple(tolerations)
