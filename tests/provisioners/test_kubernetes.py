"""The Kubernetes adapter through the official client, over HTTP, against a fake API server
(with a scheduler, nodes and ResourceQuota admission) found through a real kubeconfig file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from controller.bundle import pack
from policies.types import Location, Offer
from provisioners.base import (
    TAG_LAUNCH_TOKEN,
    Accelerator,
    Bundle,
    Instance,
    InstanceState,
    LaunchRequest,
    LocationFilter,
    ResourceRequest,
    agent_port,
)
from provisioners.errors import (
    CapacityUnavailable,
    CredentialsError,
    InvalidRequest,
    QuotaExceeded,
    TransientError,
)
from provisioners.kubernetes import KubernetesProvisioner
from provisioners.kubernetes_errors import classify
from provisioners.kubernetes_objects import MAX_SECRET_BYTES
from provisioners.startup_script import build_boot_script
from tests.fakes.kube_apiserver import FakeKubeAPIServer
from tests.fakes.kube_scheduler import FakeNode
from tests.provisioners.contract_suite import *  # noqa: F403
from tests.provisioners.contract_suite import CloudUnderTest, terminate_fully

HERE = Location("kubernetes", "fake-ctx", "default")
OTHER = Location("kubernetes", "fake-ctx", "team-b")
BIG = {"cpu": "96", "memory": "1000Gi", "pods": "110"}


@pytest.fixture(scope="module")
def apiserver() -> Iterator[FakeKubeAPIServer]:
    server = FakeKubeAPIServer(namespaces=("default", "team-b")).start()
    yield server
    server.stop()


@pytest.fixture
def fake(
    apiserver: FakeKubeAPIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FakeKubeAPIServer:
    """An emptied API server, and KUBECONFIG pointing at it as an operator would set it."""
    apiserver.clear()
    kubeconfig = apiserver.write_kubeconfig(tmp_path / "kubeconfig", "fake-ctx", "default")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    for name in [n for n in os.environ if n.startswith("SERVE_KUBERNETES_")]:
        monkeypatch.delenv(name)
    return apiserver


@pytest.fixture
def cloud(fake: FakeKubeAPIServer) -> CloudUnderTest:
    return CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "T4:1", sells_spot=False)


def with_changes(request: LaunchRequest, **changes: object) -> LaunchRequest:
    return LaunchRequest(**{**request.__dict__, **changes})  # type: ignore[arg-type]


def asking_for(cloud: CloudUnderTest, shape: str, **resources: str) -> LaunchRequest:
    request = cloud.request()
    offer = Offer(HERE, 0.0, None, shape)
    return with_changes(request, offer=offer, resources=ResourceRequest(**resources))  # type: ignore[arg-type]


def node_of(fake: FakeKubeAPIServer, inst: Instance) -> str | None:
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None
    node: str | None = pod["spec"].get("nodeName")
    return node


def gpu_node(name: str, labels: dict[str, str], gpus: int = 8, **extra: object) -> FakeNode:
    allocatable = {**BIG, "nvidia.com/gpu": str(gpus)}
    return FakeNode(name, labels=labels, allocatable=allocatable, **extra)  # type: ignore[arg-type]


# The pod and its service.


def test_pod_runs_the_shared_boot_script(cloud: CloudUnderTest, fake: FakeKubeAPIServer) -> None:
    request = cloud.request()
    inst = cloud.provisioner.launch(request)
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None
    (container,) = pod["spec"]["containers"]
    script = build_boot_script(request, None, cloud="kubernetes", agent_port=agent_port(os.environ))
    assert container["command"] == ["/bin/bash", "-c", script]
    assert pod["spec"]["restartPolicy"] == "Never"


def test_pod_asks_for_the_offers_gpus(cloud: CloudUnderTest, fake: FakeKubeAPIServer) -> None:
    inst = cloud.provisioner.launch(asking_for(cloud, "A100:8"))
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_pod_uses_the_yaml_image_without_its_docker_prefix(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    request = with_changes(
        cloud.request(), resources=ResourceRequest(image_id="docker:vllm/vllm-openai:v0.6.0")
    )
    inst = cloud.provisioner.launch(request)
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None and pod["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.6.0"


def test_service_exposes_the_replica_and_agent_ports_of_exactly_this_pod(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    request = cloud.request()
    inst = cloud.provisioner.launch(request)
    service = fake.find("services", inst.instance_id)
    assert service is not None
    assert service["spec"]["selector"] == {TAG_LAUNCH_TOKEN: request.launch_token}
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    agent = agent_port(os.environ)
    assert ports == {"serve": (8080, 8080), "agent": (agent, agent)}


def test_service_is_owned_by_its_pod(cloud: CloudUnderTest, fake: FakeKubeAPIServer) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    pod, service = fake.find("pods", inst.instance_id), fake.find("services", inst.instance_id)
    assert pod is not None and service is not None
    (owner,) = service["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Pod", pod["metadata"]["uid"])


def test_repeated_launch_finds_the_same_pod(cloud: CloudUnderTest) -> None:
    request = cloud.request()
    first = cloud.provisioner.launch(request)
    again = cloud.provisioner.launch(request)
    assert again.instance_id == first.instance_id
    assert len(cloud.provisioner.list_owned("svc")) == 1


def test_replicas_count_as_on_demand(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    assert inst.spot is False


# Choosing the GPU model and tolerating GPU pools.


def test_a100_pod_lands_on_the_a100_node_not_on_a_t4_node_with_free_gpus(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.remove_nodes()
    fake.add_node(gpu_node("t4-free", {"nvidia.com/gpu.product": "Tesla-T4"}))
    fake.add_node(gpu_node("a100-1", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}))
    inst = cloud.provisioner.launch(asking_for(cloud, "A100:8"))
    assert node_of(fake, inst) == "a100-1"


def test_gpu_model_is_also_found_by_the_gke_accelerator_label(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.remove_nodes()
    fake.add_node(gpu_node("t4-free", {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}))
    fake.add_node(gpu_node("a2-ultra", {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"}))
    inst = cloud.provisioner.launch(asking_for(cloud, "A100-80GB:8"))
    assert node_of(fake, inst) == "a2-ultra"


def test_gpu_pod_tolerates_a_tainted_aks_gpu_pool(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.remove_nodes()
    taint = {"key": "sku", "value": "gpu", "effect": "NoSchedule"}
    labels = {"nvidia.com/gpu.product": "NVIDIA-A100-80GB-PCIe"}
    fake.add_node(gpu_node("aks-gpu-1", labels, taints=[taint]))
    inst = cloud.provisioner.launch(asking_for(cloud, "A100-80GB:1"))
    got = cloud.provisioner.get(inst.instance_id, HERE)
    assert got is not None and got.state == InstanceState.RUNNING
    assert node_of(fake, inst) == "aks-gpu-1"


def test_cpu_pod_stays_off_tainted_gpu_nodes(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    inst = cloud.provisioner.launch(asking_for(cloud, "cpu"))
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None and not pod["spec"].get("tolerations")
    assert node_of(fake, inst) == "cpu-1"


def test_own_gpu_label_replaces_the_known_ones(
    fake: FakeKubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_KUBERNETES_GPU_LABEL", "mycompany.com/gpu")
    cloud = CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "A100:1")
    fake.remove_nodes()
    fake.add_node(gpu_node("t4-free", {"mycompany.com/gpu": "t4"}))
    fake.add_node(gpu_node("ours", {"mycompany.com/gpu": "a100"}))
    inst = cloud.provisioner.launch(cloud.request())
    assert node_of(fake, inst) == "ours"


def test_gpu_without_a_known_label_is_refused_naming_the_setting(cloud: CloudUnderTest) -> None:
    with pytest.raises(InvalidRequest, match="SERVE_KUBERNETES_GPU_LABEL"):
        cloud.provisioner.launch(asking_for(cloud, "MI300X:8"))


# A pod no node fits.


def test_pod_no_node_fits_is_refused_with_the_schedulers_message(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.remove_nodes()
    fake.add_node(gpu_node("a100-small", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}, 4))
    for name in ("train-1", "train-2"):
        taint = {"key": "dedicated", "value": "training", "effect": "NoSchedule"}
        fake.add_node(
            gpu_node(name, {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}, 8, taints=[taint])
        )
    inst = cloud.provisioner.launch(asking_for(cloud, "A100:8"))
    got = cloud.provisioner.get(inst.instance_id, HERE)
    pod = fake.find("pods", inst.instance_id)
    assert got is not None and pod is not None
    message = pod["status"]["conditions"][0]["message"]
    assert message.startswith(
        "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, "
        "2 node(s) had untolerated taint {dedicated: training}. preemption: "
    )
    assert got.state == InstanceState.REFUSED
    assert isinstance(got.error, CapacityUnavailable) and got.error.try_elsewhere
    assert got.error.message == message


def test_refused_pod_is_listed_as_refused_and_terminate_removes_it(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    inst = cloud.provisioner.launch(asking_for(cloud, "H100:8"))
    (listed,) = cloud.provisioner.list_owned("svc")
    assert listed.state == InstanceState.REFUSED and isinstance(listed.error, CapacityUnavailable)
    terminate_fully(cloud, inst)
    assert cloud.provisioner.list_owned("svc") == []


def test_unschedulable_pod_waits_out_the_configured_grace(
    fake: FakeKubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a node autoscaler adds nodes for pending pods, Unschedulable is not final."""
    monkeypatch.setenv("SERVE_KUBERNETES_UNSCHEDULABLE_GRACE_SECONDS", "600")
    cloud = CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "H100:8")
    inst = cloud.provisioner.launch(cloud.request())
    got = cloud.provisioner.get(inst.instance_id, HERE)
    assert got is not None and got.state == InstanceState.PENDING
    assert "Unschedulable: 0/2 nodes are available" in got.detail


# Where the controller reaches a replica.


def test_node_port_is_reached_at_the_nodes_external_ip(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    got = cloud.provisioner.get(inst.instance_id, HERE)
    service = fake.find("services", inst.instance_id)
    assert got is not None and service is not None and got.state == InstanceState.RUNNING
    assert node_of(fake, inst) == "t4-1"
    assert got.url == f"http://203.0.113.3:{service['spec']['ports'][0]['nodePort']}"


def test_node_without_external_ip_is_reached_at_its_internal_ip_with_a_note(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.remove_nodes()
    fake.add_node(FakeNode("private-1", allocatable=BIG, internal_ip="10.1.2.3"))
    inst = cloud.provisioner.launch(asking_for(cloud, "cpu"))
    got = cloud.provisioner.get(inst.instance_id, HERE)
    assert got is not None and got.address == "10.1.2.3"
    assert "SERVE_KUBERNETES_NODE_ADDRESS" in got.detail


def test_configured_node_address_is_used_for_every_node_port(
    fake: FakeKubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_KUBERNETES_NODE_ADDRESS", "nodes.example.com")
    cloud = CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "T4:1")
    inst = cloud.provisioner.launch(cloud.request())
    got = cloud.provisioner.get(inst.instance_id, HERE)
    assert got is not None and got.address == "nodes.example.com"


def test_node_addresses_are_read_once_per_node_not_once_per_pod(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    for replica in (1, 2, 3):
        cloud.provisioner.launch(cloud.request(replica_id=replica))
    for _ in range(2):
        listed = cloud.provisioner.list_owned("svc")
        assert {i.address for i in listed} == {"203.0.113.3"}
    assert fake.requests[("get", "nodes")] == 1


def test_unreadable_node_falls_back_to_the_pods_host_ip(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.forbid("get", "nodes")
    inst = cloud.provisioner.launch(cloud.request())
    got = cloud.provisioner.get(inst.instance_id, HERE)
    assert got is not None and got.address == "10.0.0.3"
    assert 'cannot get resource "nodes"' in got.detail


def test_agent_is_reached_at_the_node_address_on_its_own_node_port(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    got = cloud.provisioner.get(inst.instance_id, HERE)
    service = fake.find("services", inst.instance_id)
    assert got is not None and service is not None
    node_ports = {p["name"]: p["nodePort"] for p in service["spec"]["ports"]}
    assert node_ports["agent"] != node_ports["serve"]
    assert got.agent_url == f"https://203.0.113.3:{node_ports['agent']}"


def test_a_service_port_equal_to_the_agent_port_is_refused_naming_both(
    fake: FakeKubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_AGENT_PORT", "8080")
    cloud = CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "cpu")
    with pytest.raises(InvalidRequest, match="8080 is also the replica agent's port"):
        cloud.provisioner.launch(cloud.request())
    assert fake.objects == {}


def test_cluster_ip_agent_is_reached_at_the_agent_port(
    fake: FakeKubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_KUBERNETES_SERVICE_TYPE", "ClusterIP")
    monkeypatch.setenv("SERVE_AGENT_PORT", "47010")
    cloud = CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "cpu")
    inst = cloud.provisioner.launch(cloud.request())
    service = fake.find("services", inst.instance_id)
    assert service is not None
    assert inst.agent_url == f"https://{service['spec']['clusterIP']}:47010"


def test_cluster_ip_service_is_reached_at_the_replica_port(
    fake: FakeKubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_KUBERNETES_SERVICE_TYPE", "ClusterIP")
    cloud = CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "cpu")
    inst = cloud.provisioner.launch(cloud.request())
    service = fake.find("services", inst.instance_id)
    assert service is not None
    assert inst.url == f"http://{service['spec']['clusterIP']}:8080"


# Limits and quotas.


def test_pod_in_a_compute_quota_namespace_declares_its_limits(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    hard = {"requests.cpu": "64", "requests.memory": "256Gi"}
    fake.set_quota(
        "default", "compute-resources", {**hard, "limits.cpu": "64", "limits.memory": "256Gi"}
    )
    inst = cloud.provisioner.launch(asking_for(cloud, "T4:1", cpus="4+", memory="16"))
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None
    resources = pod["spec"]["containers"][0]["resources"]
    wanted = {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert resources["limits"] == resources["requests"] == wanted


def test_pod_without_cpu_and_memory_in_the_yaml_gets_the_configured_defaults(
    fake: FakeKubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_KUBERNETES_CPU", "3")
    monkeypatch.setenv("SERVE_KUBERNETES_MEMORY", "12Gi")
    cloud = CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "cpu")
    inst = cloud.provisioner.launch(cloud.request())
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "3", "memory": "12Gi"}


def test_exceeded_compute_quota_is_quota_exceeded_with_the_message(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.set_quota("default", "compute-resources", {"limits.memory": "32Gi"})
    cloud.provisioner.launch(asking_for(cloud, "T4:1", memory="24"))
    with pytest.raises(QuotaExceeded) as refused:
        cloud.provisioner.launch(asking_for(cloud, "T4:1", memory="16"))
    assert refused.value.try_elsewhere
    assert (
        "exceeded quota: compute-resources, requested: limits.memory=16Gi, "
        "used: limits.memory=24Gi, limited: limits.memory=32Gi"
    ) in refused.value.message


def test_missing_limits_refusal_is_quota_exceeded_not_credentials(
    fake: FakeKubeAPIServer,
) -> None:
    """What a namespace with a compute quota answers a pod without limits (as any client
    that does not set them gets it), through our error table."""
    fake.set_quota("default", "compute-resources", {"limits.cpu": "8", "limits.memory": "32Gi"})
    api = k8s.CoreV1Api(k8s.ApiClient(k8s.Configuration()))
    api.api_client.configuration.host = fake.url
    api.api_client.configuration.api_key = {"authorization": "Bearer fake-bearer-token"}
    bare = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="bare"),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="busybox")]),
    )
    with pytest.raises(ApiException) as raw:
        api.create_namespaced_pod("default", bare)
    error = classify(raw.value, HERE.key)
    assert isinstance(error, QuotaExceeded)
    assert "failed quota: compute-resources: must specify limits.cpu,limits.memory" in str(error)


def test_quota_refusal_leaves_nothing_behind(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.exceed_quota(HERE)
    with pytest.raises(QuotaExceeded, match="exceeded quota"):
        cloud.provisioner.launch(cloud.request(service="leaky"))
    assert cloud.provisioner.list_owned("leaky") == []
    assert fake.objects == {}


# The life and end of a pod.


def test_terminate_is_false_while_the_pod_is_still_terminating(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.termination_seconds = 3600
    inst = cloud.provisioner.launch(cloud.request())
    assert cloud.provisioner.terminate(inst.instance_id, HERE) is False
    assert cloud.provisioner.terminate(inst.instance_id, HERE) is False
    fake.finish_deletions()
    assert cloud.provisioner.terminate(inst.instance_id, HERE) is True
    assert fake.find("pods", inst.instance_id) is None
    assert fake.find("services", inst.instance_id) is None


def test_pod_deleted_outside_spotserve_is_lost_while_it_terminates(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.termination_seconds = 3600
    inst = cloud.provisioner.launch(cloud.request())
    fake.delete_outside(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, HERE)
    assert got is not None and got.state == InstanceState.LOST
    fake.finish_deletions()
    assert cloud.provisioner.get(inst.instance_id, HERE) is None


def test_service_left_by_a_gone_pod_is_listed_until_terminated(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.pause_garbage_collector()
    inst = cloud.provisioner.launch(cloud.request())
    fake.delete_outside(inst.instance_id)
    assert cloud.provisioner.get(inst.instance_id, HERE) is None
    (left,) = cloud.provisioner.list_owned("svc")
    assert (left.instance_id, left.state, left.controller_id) == (
        inst.instance_id,
        InstanceState.LOST,
        "ctrl-test",
    )
    assert cloud.provisioner.terminate(inst.instance_id, HERE) is True
    assert cloud.provisioner.list_owned("svc") == []


def test_evicted_pod_is_preempted(cloud: CloudUnderTest, fake: FakeKubeAPIServer) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    fake.evict(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, HERE)
    assert got is not None and got.state == InstanceState.PREEMPTED
    assert "low on resource" in got.detail


def test_pod_whose_program_failed_is_terminated(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    fake.fail(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, HERE)
    assert got is not None and got.state == InstanceState.TERMINATED


def test_ended_pods_stay_listed_so_they_can_be_reaped(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    fake.fail(inst.instance_id)
    listed = {i.instance_id: i.state for i in cloud.provisioner.list_owned("svc")}
    assert listed == {inst.instance_id: InstanceState.TERMINATED}


# A hung API server.


OPERATIONS: dict[str, Callable[[CloudUnderTest, Instance], object]] = {
    "launch": lambda cloud, _: cloud.provisioner.launch(cloud.request(service="late")),
    "get": lambda cloud, inst: cloud.provisioner.get(inst.instance_id, HERE),
    "terminate": lambda cloud, inst: cloud.provisioner.terminate(inst.instance_id, HERE),
    "list_owned": lambda cloud, _: cloud.provisioner.list_owned("svc"),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_hung_api_server_costs_a_bounded_wait(fake: FakeKubeAPIServer, operation: str) -> None:
    """One read timeout, not one per retry: a request already sent is not repeated."""
    provisioner = KubernetesProvisioner(request_timeout=(0.5, 0.5))
    cloud = CloudUnderTest(provisioner, fake, HERE, OTHER, "T4:1")
    inst = provisioner.launch(cloud.request())
    fake.stall(10)
    started = time.monotonic()
    with pytest.raises(TransientError):
        OPERATIONS[operation](cloud, inst)
    assert time.monotonic() - started < 1.5


# Errors and configuration.


def test_rbac_refusal_is_a_credentials_error_naming_the_permissions(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.forbid("create")
    with pytest.raises(
        CredentialsError, match="create/get/list/delete on pods, services and secrets"
    ):
        cloud.provisioner.launch(cloud.request())


def test_launch_outside_the_configured_namespace_is_refused(cloud: CloudUnderTest) -> None:
    with pytest.raises(InvalidRequest, match="SERVE_KUBERNETES_NAMESPACE"):
        cloud.provisioner.launch(cloud.request(OTHER))


def test_missing_namespace_is_an_invalid_request(
    fake: FakeKubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_KUBERNETES_NAMESPACE", "nope")
    where = Location("kubernetes", "fake-ctx", "nope")
    cloud = CloudUnderTest(KubernetesProvisioner(), fake, where, where, "cpu")
    with pytest.raises(InvalidRequest, match='namespaces "nope" not found'):
        cloud.provisioner.launch(cloud.request())


def test_offers_the_cluster_only_where_the_yaml_names_kubernetes(cloud: CloudUnderTest) -> None:
    anywhere = ResourceRequest(accelerators=(Accelerator("L4", 1),))
    named = ResourceRequest(
        accelerators=(Accelerator("L4", 1),), places=(LocationFilter(cloud="kubernetes"),)
    )
    assert cloud.provisioner.offers(anywhere) == []
    (offer,) = cloud.provisioner.offers(named)
    assert (offer.location, offer.spot_price, offer.instance_type) == (HERE, None, "L4:1")


def test_check_names_the_context_and_namespace(cloud: CloudUnderTest) -> None:
    result = cloud.provisioner.check()
    assert result.usable and "kubernetes/fake-ctx/default" in result.reason


def test_check_without_kubeconfig_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = KubernetesProvisioner().check()
    assert not result.usable and "KUBECONFIG" in result.hint


def test_check_with_rejected_token_is_not_usable(cloud: CloudUnderTest) -> None:
    cloud.fake.reject_credentials()
    result = cloud.provisioner.check()
    assert not result.usable and "Unauthorized" in result.reason


# The bundle, in a Secret mounted into the pod.


def packed_bundle(root: Path) -> Bundle:
    workdir = root / "app"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "app.py").write_text("print('hello from the bundle')\n")
    packed = pack(workdir, {}, root / "bundles")
    assert packed is not None
    return Bundle(packed.digest, packed.path, packed.size)


def oversized_bundle(root: Path, size: int) -> Bundle:
    path = root / "big.tar.gz"
    path.write_bytes(os.urandom(size))
    return Bundle(hashlib.sha256(path.read_bytes()).hexdigest(), path, size)


def bundled(cloud: CloudUnderTest, bundle: Bundle, service: str = "svc") -> LaunchRequest:
    return with_changes(cloud.request(service=service), bundle=bundle, agent_token="t0ken")


def boot_config_in(pod: dict[str, Any]) -> dict[str, Any]:
    script = pod["spec"]["containers"][0]["command"][2]
    config = script.split("<<'SPOTSERVE_CONFIG'\n", 1)[1].split("\nSPOTSERVE_CONFIG", 1)[0]
    found: dict[str, Any] = json.loads(config)
    return found


def test_bundle_reaches_the_pod_as_a_mounted_secret_named_in_the_boot_config(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer, tmp_path: Path
) -> None:
    bundle = packed_bundle(tmp_path)
    inst = cloud.provisioner.launch(bundled(cloud, bundle))
    pod = fake.find("pods", inst.instance_id)
    secret = fake.find("secrets", f"{inst.instance_id}-bundle")
    assert pod is not None and secret is not None
    held = base64.b64decode(secret["data"]["bundle.tar.gz"])
    assert hashlib.sha256(held).hexdigest() == bundle.digest
    (volume,) = pod["spec"]["volumes"]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    (mount,) = pod["spec"]["containers"][0]["volumeMounts"]
    assert (mount["name"], mount["readOnly"]) == (volume["name"], True)
    config = boot_config_in(pod)
    assert config["bundle_url"] == f"file://{mount['mountPath']}/bundle.tar.gz"
    assert config["bundle_digest"] == bundle.digest


def test_pod_without_a_bundle_mounts_nothing(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None and "volumes" not in pod["spec"]
    assert fake.find("secrets", f"{inst.instance_id}-bundle") is None
    assert boot_config_in(pod)["bundle_url"] is None


def test_bundle_secret_is_labelled_like_its_pod_and_goes_with_it(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer, tmp_path: Path
) -> None:
    inst = cloud.provisioner.launch(bundled(cloud, packed_bundle(tmp_path)))
    pod = fake.find("pods", inst.instance_id)
    secret = fake.find("secrets", f"{inst.instance_id}-bundle")
    assert pod is not None and secret is not None
    assert secret["metadata"]["labels"] == pod["metadata"]["labels"]
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Pod", pod["metadata"]["uid"])
    fake.delete_outside(inst.instance_id)
    fake.finish_deletions()
    assert fake.find("secrets", f"{inst.instance_id}-bundle") is None


def test_terminate_deletes_the_bundle_secret_itself(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer, tmp_path: Path
) -> None:
    fake.pause_garbage_collector()
    inst = cloud.provisioner.launch(bundled(cloud, packed_bundle(tmp_path)))
    terminate_fully(cloud, inst)
    assert fake.find("secrets", f"{inst.instance_id}-bundle") is None


def test_bundle_larger_than_a_secret_holds_is_refused_before_anything_is_created(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer, tmp_path: Path
) -> None:
    too_big = MAX_SECRET_BYTES + 1
    with pytest.raises(InvalidRequest) as refused:
        cloud.provisioner.launch(bundled(cloud, oversized_bundle(tmp_path, too_big)))
    message = str(refused.value)
    assert str(too_big) in message and str(MAX_SECRET_BYTES) in message
    assert "bucket" in message and "image" in message
    assert fake.objects == {}
    assert not any(verb == "create" for verb, _ in fake.requests)


def test_bundle_of_exactly_one_mib_is_accepted(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer, tmp_path: Path
) -> None:
    inst = cloud.provisioner.launch(bundled(cloud, oversized_bundle(tmp_path, MAX_SECRET_BYTES)))
    assert fake.find("secrets", f"{inst.instance_id}-bundle") is not None


def test_apiserver_refuses_a_secret_over_one_mib_with_kubernetes_own_status(
    fake: FakeKubeAPIServer,
) -> None:
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=os.environ["KUBECONFIG"]))
    data = {"a": base64.b64encode(b"x" * (MAX_SECRET_BYTES // 2)).decode()}
    data["b"] = base64.b64encode(b"y" * (MAX_SECRET_BYTES // 2 + 1)).decode()
    secret = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="big"), data=data)
    with pytest.raises(ApiException) as refused:
        api.create_namespaced_secret("default", secret)
    body = json.loads(refused.value.body)
    assert (refused.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        'Secret "big" is invalid: data: Too long: may not be more than 1048576 bytes'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueTooLong",
            "message": "Too long: may not be more than 1048576 bytes",
            "field": "data",
        }
    ]
    assert isinstance(classify(refused.value, HERE.key), InvalidRequest)


def test_secret_refused_at_launch_leaves_nothing_behind(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer, tmp_path: Path
) -> None:
    fake.forbid("create", "secrets")
    with pytest.raises(CredentialsError, match="secrets"):
        cloud.provisioner.launch(bundled(cloud, packed_bundle(tmp_path), service="leaky"))
    assert fake.objects == {}


def test_release_deletes_the_services_leftover_secrets_only(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer, tmp_path: Path
) -> None:
    fake.pause_garbage_collector()
    bundle = packed_bundle(tmp_path)
    launched = [cloud.provisioner.launch(bundled(cloud, bundle, s)) for s in ("web", "web", "db")]
    for inst in launched:
        fake.delete_outside(inst.instance_id)
    fake.finish_deletions()

    def secrets_of(service: str) -> list[str]:
        return [
            n for (k, _, n), o in fake.objects.items() if k == "secrets" and n.startswith(service)
        ]

    assert len(secrets_of("web")) == 2
    assert cloud.provisioner.release("web") is True
    assert secrets_of("web") == [] and len(secrets_of("db")) == 1
