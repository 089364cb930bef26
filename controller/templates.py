"""Cut a `ReplicaTemplate` (what the replica manager needs) out of a service spec."""

from __future__ import annotations

from autoscaler.target import ScalingConfig
from controller.spec import ServiceSpec
from provisioners.base import Bundle
from replica_manager.records import ProbeSpec, ReplicaTemplate


def replica_template(
    service: str, version: int, spec: ServiceSpec, bundle: Bundle | None = None
) -> ReplicaTemplate:
    probe = spec.service.readiness_probe
    return ReplicaTemplate(
        service=service,
        version=version,
        run=spec.run,
        port=spec.port,
        setup=spec.setup,
        envs=spec.replica_envs(),
        secrets=spec.replica_secrets(),
        workdir=spec.workdir,
        bundle=bundle,
        bucket_mounts=spec.bucket_mounts(),
        resources=tuple(spec.resource_requests()),
        probe=ProbeSpec(
            path=probe.path,
            port=spec.port,
            initial_delay_seconds=probe.initial_delay_seconds,
            timeout_seconds=probe.timeout_seconds,
            post_data=probe.post_data,
            headers=dict(probe.headers),
        ),
    )


def scaling_config(spec: ServiceSpec) -> ScalingConfig:
    p = spec.service.policy
    target = p.target_qps_per_replica
    return ScalingConfig(
        min_replicas=p.min_replicas,
        max_replicas=p.max_replicas if p.max_replicas is not None else p.min_replicas,
        target_qps_per_replica=None if isinstance(target, dict) else target,
        target_concurrency_per_replica=p.target_concurrency_per_replica,
        upscale_delay_seconds=p.upscale_delay_seconds,
        downscale_delay_seconds=p.downscale_delay_seconds,
        per_accelerator=isinstance(target, dict),
    )
