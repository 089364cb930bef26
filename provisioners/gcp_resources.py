"""Pure builders and readers for the Compute Engine resources one replica owns.

A replica on GCP is one instance plus two ingress firewall rules, each aimed at that instance
only (they target the network tag that equals the instance name): `<name>-port` opens the
service port to `SERVE_INGRESS_CIDR`, `<name>-agent` opens the replica agent's TLS port to
`SERVE_CONTROLLER_CIDR` only. Labels on the instance and its boot disk carry the ownership
tags; firewall rules have no labels, so each rule's description carries them as JSON. Pure:
no I/O.

Every `Instance.Status` of the v1 API (google-cloud-compute `Instance.Status`) has a state in
`STATES`. The statuses a VM passes through on its way down (PENDING_STOP, STOPPING,
SUSPENDING, DEPROVISIONING) are UNKNOWN on their own: the end state says why, and a SPOT VM
in one of them is checked for a preemption record first (`PREEMPTION_STATUSES`). A VM that
is STOPPED/TERMINATED (GCE's "TERMINATED" means stopped) without a preemption record stopped
itself: TERMINATED. Spotserve never suspends, so SUSPENDED is LOST.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from google.cloud import compute_v1

from policies.types import Location
from provisioners.base import (
    TAG_AGENT_PORT,
    TAG_CONTROLLER_ID,
    TAG_LAUNCH_TOKEN,
    TAG_LOCATION,
    TAG_MANAGED_BY,
    TAG_PORT,
    TAG_REPLICA_ID,
    TAG_SERVICE,
    TAG_SPOT,
    Instance,
    InstanceState,
    LaunchRequest,
)
from provisioners.gcp_history import InstanceHistory
from provisioners.startup_script import recorded_agent_port

FIREWALL_SUFFIX = "-port"
AGENT_FIREWALL_SUFFIX = "-agent"
DESCRIPTION_PREFIX = "spotserve-owned "
DEFAULT_NETWORK = "global/networks/default"
CPU_IMAGE = "projects/debian-cloud/global/images/family/debian-12"
GPU_IMAGE = (
    "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11-py310"
)
DEFAULT_DISK_GB = 100

GPU_ACCELERATOR_TYPES = {
    "T4": "nvidia-tesla-t4",
    "V100": "nvidia-tesla-v100",
    "P100": "nvidia-tesla-p100",
    "P4": "nvidia-tesla-p4",
    "K80": "nvidia-tesla-k80",
}
"""GPUs attached to N1 machine types; A2/A3/G2 types carry theirs implicitly."""

STATES = {
    "UNDEFINED_STATUS": InstanceState.UNKNOWN,
    "PENDING": InstanceState.PENDING,  # flex-start: waiting for capacity
    "PROVISIONING": InstanceState.PENDING,
    "STAGING": InstanceState.PENDING,
    "RUNNING": InstanceState.RUNNING,
    "REPAIRING": InstanceState.UNKNOWN,
    "PENDING_STOP": InstanceState.UNKNOWN,  # gracefully shutting down
    "STOPPING": InstanceState.UNKNOWN,
    "SUSPENDING": InstanceState.UNKNOWN,
    "DEPROVISIONING": InstanceState.UNKNOWN,  # being torn down
    "STOPPED": InstanceState.TERMINATED,
    "TERMINATED": InstanceState.TERMINATED,
    "SUSPENDED": InstanceState.LOST,
}
PREEMPTION_STATUSES = frozenset(
    {"PENDING_STOP", "STOPPING", "DEPROVISIONING", "STOPPED", "TERMINATED"}
)
"""Statuses a reclaimed Spot VM passes through or ends in: look for a preemption record."""
_NOT_LABEL = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class Identity:
    """Whose replica an instance is, read back from labels or a firewall description."""

    service: str
    replica_id: int
    launch_token: str
    spot: bool
    port: int | None
    location: str | None = None
    controller_id: str = ""
    agent_port: int | None = None


def label_value(value: str) -> str:
    """GCE label values: lowercase letters, digits, `_` and `-`, at most 63 characters."""
    return _NOT_LABEL.sub("-", value.lower())[:63]


def labels_for(request: LaunchRequest, agent_port: int) -> dict[str, str]:
    ports = {TAG_PORT: str(request.port), TAG_AGENT_PORT: str(agent_port)}
    tags = {**request.ownership_tags(), **ports}
    return {key: label_value(value) for key, value in tags.items()}


def firewall_name(instance_name: str) -> str:
    return f"{instance_name}{FIREWALL_SUFFIX}"


def agent_firewall_name(instance_name: str) -> str:
    return f"{instance_name}{AGENT_FIREWALL_SUFFIX}"


def rule_names(instance_name: str) -> tuple[str, str]:
    """The replica's rules, in the order `terminate` lets them go: the service-port rule,
    which `get` reads a vanished instance's identity from, last."""
    return agent_firewall_name(instance_name), firewall_name(instance_name)


def instance_of_rule(rule_name: str) -> str | None:
    """The instance a rule of ours was made for, from its name; None for another rule."""
    for suffix in (FIREWALL_SUFFIX, AGENT_FIREWALL_SUFFIX):
        if rule_name.endswith(suffix):
            return rule_name.removesuffix(suffix)
    return None


def zone_url(project: str, zone: str) -> str:
    return f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}"


def instance_url(project: str, zone: str, name: str) -> str:
    return f"{zone_url(project, zone)}/instances/{name}"


def instance_body(
    request: LaunchRequest,
    name: str,
    script: str,
    gpu: tuple[str, int] | None,
    agent_port: int,
    image: str | None = None,
    network: str = DEFAULT_NETWORK,
) -> compute_v1.Instance:
    """The insert body. Spot: provisioning model SPOT, deleted (not stopped) on preemption."""
    zone = request.location.zone
    labels = labels_for(request, agent_port)
    metadata = [compute_v1.Items(key="startup-script", value=script)]
    if gpu:
        metadata.append(compute_v1.Items(key="install-nvidia-driver", value="True"))
    body = compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{request.offer.instance_type}",
        labels=labels,
        tags=compute_v1.Tags(items=[name]),
        metadata=compute_v1.Metadata(items=metadata),
        scheduling=_scheduling(request.spot, gpu is not None),
        network_interfaces=[
            compute_v1.NetworkInterface(
                network=network,
                access_configs=[
                    compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")
                ],
            )
        ],
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image=image
                    or request.resources.image_id
                    or (GPU_IMAGE if gpu else CPU_IMAGE),
                    disk_size_gb=request.resources.disk_size or DEFAULT_DISK_GB,
                    labels=labels,
                ),
            )
        ],
    )
    if (
        gpu
        and gpu[0].upper() in GPU_ACCELERATOR_TYPES
        and request.offer.instance_type.startswith("n1-")
    ):
        body.guest_accelerators = [
            compute_v1.AcceleratorConfig(
                accelerator_type=f"zones/{zone}/acceleratorTypes/{GPU_ACCELERATOR_TYPES[gpu[0].upper()]}",
                accelerator_count=gpu[1],
            )
        ]
    return body


def _scheduling(spot: bool, gpu: bool) -> compute_v1.Scheduling:
    # GPU VMs cannot live-migrate, so host maintenance must terminate them.
    maintenance = "TERMINATE" if gpu or spot else "MIGRATE"
    if spot:
        return compute_v1.Scheduling(
            provisioning_model="SPOT",
            instance_termination_action="DELETE",
            automatic_restart=False,
            on_host_maintenance=maintenance,
        )
    return compute_v1.Scheduling(
        provisioning_model="STANDARD", automatic_restart=True, on_host_maintenance=maintenance
    )


def firewall_body(
    request: LaunchRequest, name: str, source_range: str, network: str = DEFAULT_NETWORK
) -> compute_v1.Firewall:
    """Ingress from `source_range` to the service port of this one instance (matched by its
    network tag)."""
    return _rule(request, firewall_name(name), name, source_range, request.port, network)


def agent_firewall_body(
    request: LaunchRequest,
    name: str,
    controller_range: str,
    agent_port: int,
    network: str = DEFAULT_NETWORK,
) -> compute_v1.Firewall:
    """Ingress from the controller's range only to the agent port of this one instance: the
    agent holds the replica's secrets, so the ingress range (end users) must not reach it."""
    return _rule(request, agent_firewall_name(name), name, controller_range, agent_port, network)


def _rule(
    request: LaunchRequest, rule: str, target: str, source_range: str, port: int, network: str
) -> compute_v1.Firewall:
    tags = {
        **request.ownership_tags(),
        TAG_PORT: str(request.port),
        TAG_LOCATION: request.location.key,
    }
    return compute_v1.Firewall(
        name=rule,
        network=network,
        direction="INGRESS",
        priority=1000,
        source_ranges=[source_range],
        target_tags=[target],
        allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=[str(port)])],
        description=DESCRIPTION_PREFIX + json.dumps(tags, sort_keys=True),
    )


def identity_from_labels(labels: dict[str, str]) -> Identity | None:
    if labels.get(TAG_MANAGED_BY) != "spotserve" or TAG_SERVICE not in labels:
        return None
    try:
        replica_id = int(labels.get(TAG_REPLICA_ID, ""))
    except ValueError:
        return None
    port = labels.get(TAG_PORT, "")
    return Identity(
        service=labels[TAG_SERVICE],
        replica_id=replica_id,
        launch_token=labels.get(TAG_LAUNCH_TOKEN, ""),
        spot=labels.get(TAG_SPOT) == "true",
        port=int(port) if port.isdigit() else None,
        location=labels.get(TAG_LOCATION),
        controller_id=labels.get(TAG_CONTROLLER_ID, ""),
        agent_port=recorded_agent_port(labels),
    )


def identity_from_firewall(rule: compute_v1.Firewall) -> Identity | None:
    if not rule.description.startswith(DESCRIPTION_PREFIX):
        return None
    try:
        tags = json.loads(rule.description[len(DESCRIPTION_PREFIX) :])
    except ValueError:
        return None
    return identity_from_labels(tags) if isinstance(tags, dict) else None


def to_instance(
    gce: compute_v1.Instance, location: Location, preempted: bool = False
) -> Instance | None:
    """Our view of a GCE instance, or None if its labels do not say it is ours."""
    who = identity_from_labels(dict(gce.labels))
    if who is None:
        return None
    state = InstanceState.PREEMPTED if preempted else STATES.get(gce.status, InstanceState.UNKNOWN)
    return Instance(
        instance_id=gce.name,
        location=location,
        spot=gce.scheduling.provisioning_model == "SPOT",
        state=state,
        service=who.service,
        replica_id=who.replica_id,
        launch_token=who.launch_token,
        address=_external_ip(gce),
        port=who.port,
        detail=f"GCE status {gce.status}" + (" (preempted)" if preempted else ""),
        controller_id=who.controller_id,
        agent_port=who.agent_port,
    )


def pending_instance(request: LaunchRequest, name: str, agent_port: int) -> Instance:
    """What `launch` returns: the insert is accepted, the instance not created yet."""
    return Instance(
        instance_id=name,
        location=request.location,
        spot=request.spot,
        state=InstanceState.PENDING,
        service=request.service,
        replica_id=request.replica_id,
        launch_token=request.launch_token,
        port=request.port,
        detail="insert accepted",
        controller_id=request.controller_id,
        agent_port=agent_port,
    )


def tombstone(name: str, location: Location, who: Identity, history: InstanceHistory) -> Instance:
    """An instance that cannot be read, known from its firewall rule (our leftover) and its
    zone operations: refused by its insert, still being inserted, preempted, or else lost."""
    error = history.refusal(location.key)
    if error is not None:
        state, detail = InstanceState.REFUSED, f"insert failed: {error}"
    elif history.insert_pending:
        state, detail = InstanceState.PENDING, "insert still running"
    elif history.preempted:
        state, detail = (
            InstanceState.PREEMPTED,
            "preempted: zone operation compute.instances.preempted",
        )
    else:
        state, detail = InstanceState.LOST, "instance gone without a preemption record"
    return Instance(
        instance_id=name,
        location=location,
        spot=who.spot,
        state=state,
        service=who.service,
        replica_id=who.replica_id,
        launch_token=who.launch_token,
        port=who.port,
        detail=detail,
        controller_id=who.controller_id,
        error=error,
    )


def _external_ip(gce: compute_v1.Instance) -> str | None:
    for nic in gce.network_interfaces:
        for access in nic.access_configs:
            if access.nat_i_p:
                return str(access.nat_i_p)
    for nic in gce.network_interfaces:
        if nic.network_i_p:
            return str(nic.network_i_p)
    return None
