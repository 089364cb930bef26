"""What a replica's pod (and service) say of it, as an `Instance`.

    REFUSED     Pending, and the scheduler marked it `PodScheduled=False, reason
                Unschedulable` (longer than the configured grace): no node fits it, and
                none will by waiting, unless a node autoscaler adds one. The error is
                `CapacityUnavailable` with the scheduler's own message ("0/3 nodes are
                available: 1 Insufficient nvidia.com/gpu, ...").
    PREEMPTED   what the kubelet and the control plane record when they take a pod away:
                a `DisruptionTarget` condition (Kubernetes >= 1.26: scheduler preemption,
                eviction API, taint manager, node shutdown, pod GC) or a failed pod whose
                reason is an eviction or node loss.
    TERMINATED  the container ran to its end (phase Succeeded/Failed for another reason).
    LOST        being deleted with no disruption recorded (someone deleted it), or only its
                service is left (listed so the leftover is reaped).

A pod the API server no longer knows is not an Instance at all: `get` answers None and the
replica manager decides it is lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from kubernetes import client as k8s

from policies.types import Location
from provisioners.base import (
    TAG_CONTROLLER_ID,
    TAG_LAUNCH_TOKEN,
    TAG_REPLICA_ID,
    TAG_SERVICE,
    Instance,
    InstanceState,
)
from provisioners.errors import CapacityUnavailable, ProvisionError
from provisioners.kubernetes_objects import ANNOTATION_PORT, meta

PREEMPTION_REASONS = frozenset(
    {"Evicted", "Preempting", "NodeLost", "Shutdown", "NodeShutdown", "Terminated"}
)


@dataclass(frozen=True)
class PodState:
    state: InstanceState
    detail: str
    error: ProvisionError | None = None


def pod_state(
    pod: k8s.V1Pod, location: Location, grace_seconds: float = 0.0, now: float | None = None
) -> PodState:
    """`now` (epoch seconds) and `grace_seconds` decide when an Unschedulable pod counts
    as refused; `now` defaults to the wall clock (the API server's times are wall times)."""
    status = pod.status or k8s.V1PodStatus()
    disruption = _condition(pod, "DisruptionTarget")
    if disruption is not None and disruption.status == "True":
        return PodState(InstanceState.PREEMPTED, _reason(disruption.reason, disruption.message))
    if status.phase == "Failed" and status.reason in PREEMPTION_REASONS:
        return PodState(InstanceState.PREEMPTED, _reason(status.reason, status.message))
    if status.phase in ("Succeeded", "Failed"):
        ended = f"pod {status.phase.lower()}: {status.message or _exit(pod)}"
        return PodState(InstanceState.TERMINATED, ended.strip())
    if meta(pod).deletion_timestamp:
        return PodState(InstanceState.LOST, "being deleted, with no disruption recorded")
    if status.phase == "Pending":
        return _pending(pod, location, grace_seconds, time.time() if now is None else now)
    if status.phase == "Running":
        return PodState(InstanceState.RUNNING, "running")
    return PodState(InstanceState.UNKNOWN, f"pod phase {status.phase!r}")


def to_instance(
    pod: k8s.V1Pod,
    state: PodState,
    location: Location,
    endpoint: tuple[str | None, int | None],
    agent_port: int | None = None,
) -> Instance:
    """`endpoint` is the replica's (address, port); the agent is at the same address."""
    address, port = endpoint
    return replace(_instance(pod, location, state, address, port), agent_port=agent_port)


def leftover_instance(service: k8s.V1Service, location: Location) -> Instance:
    """A service whose pod is gone (its owner reference lets the garbage collector remove
    it; until then it is listed so the reaper can)."""
    left = PodState(InstanceState.LOST, "pod gone; its service is left")
    return _instance(service, location, left, None, None)


def annotated_port(pod: k8s.V1Pod) -> int | None:
    text = (meta(pod).annotations or {}).get(ANNOTATION_PORT, "")
    return int(text) if text.isdigit() else None


def _instance(
    obj: k8s.V1Pod | k8s.V1Service,
    location: Location,
    state: PodState,
    address: str | None,
    port: int | None,
) -> Instance:
    labels = meta(obj).labels or {}
    replica = labels.get(TAG_REPLICA_ID, "")
    return Instance(
        instance_id=str(meta(obj).name),
        location=location,
        spot=False,
        state=state.state,
        service=labels.get(TAG_SERVICE, ""),
        replica_id=int(replica) if replica.isdigit() else -1,
        launch_token=labels.get(TAG_LAUNCH_TOKEN, ""),
        address=address,
        port=port,
        detail=state.detail,
        controller_id=labels.get(TAG_CONTROLLER_ID, ""),
        error=state.error,
    )


def _pending(pod: k8s.V1Pod, location: Location, grace: float, now: float) -> PodState:
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is None or scheduled.status != "False":
        return PodState(InstanceState.PENDING, "pending")
    detail = _reason(scheduled.reason, scheduled.message)
    if scheduled.reason != "Unschedulable" or _age(scheduled, now) < grace:
        return PodState(InstanceState.PENDING, detail)
    refusal = CapacityUnavailable(
        scheduled.message or "the scheduler found no node for the pod",
        location=location.key,
        code="Unschedulable",
    )
    return PodState(InstanceState.REFUSED, detail, refusal)


def _age(condition: k8s.V1PodCondition, now: float) -> float:
    since = condition.last_transition_time
    return now - since.timestamp() if since is not None else float("inf")


def _exit(pod: k8s.V1Pod) -> str:
    statuses = (pod.status.container_statuses if pod.status else None) or []
    ended = [_get(s, "state", "terminated") for s in statuses]
    codes = [f"container exited with code {t.exit_code}" for t in ended if t is not None]
    return "; ".join(codes)


def _reason(reason: str | None, message: str | None) -> str:
    return f"{reason or ''}: {message or ''}".strip(": ")


def _condition(pod: k8s.V1Pod, kind: str) -> k8s.V1PodCondition | None:
    conditions = (pod.status.conditions if pod.status else None) or []
    return next((c for c in conditions if c.type == kind), None)


def _get(obj: Any, *path: str) -> Any:
    for attr in path:
        obj = getattr(obj, attr, None) if obj is not None else None
    return obj
