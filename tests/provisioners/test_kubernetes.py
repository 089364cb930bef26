"""The Kubernetes adapter through the official client, over HTTP, against a fake API server
found through a real kubeconfig file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.types import Location
from provisioners.base import (
    TAG_LAUNCH_TOKEN,
    Accelerator,
    InstanceState,
    LaunchRequest,
    LocationFilter,
    ResourceRequest,
)
from provisioners.errors import CredentialsError, InvalidRequest, QuotaExceeded
from provisioners.kubernetes import KubernetesProvisioner
from provisioners.startup_script import build_startup_script
from tests.fakes.kube_apiserver import FakeKubeAPIServer
from tests.provisioners.contract_suite import *  # noqa: F403
from tests.provisioners.contract_suite import CloudUnderTest

HERE = Location("kubernetes", "fake-ctx", "default")
OTHER = Location("kubernetes", "fake-ctx", "team-b")


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
    for name in ("SERVE_KUBERNETES_NAMESPACE", "SERVE_KUBERNETES_SERVICE_TYPE"):
        monkeypatch.delenv(name, raising=False)
    return apiserver


@pytest.fixture
def cloud(fake: FakeKubeAPIServer) -> CloudUnderTest:
    return CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "T4:1", sells_spot=False)


def with_changes(request: LaunchRequest, **changes: object) -> LaunchRequest:
    return LaunchRequest(**{**request.__dict__, **changes})  # type: ignore[arg-type]


def test_pod_runs_the_shared_startup_script(cloud: CloudUnderTest, fake: FakeKubeAPIServer) -> None:
    request = cloud.request()
    inst = cloud.provisioner.launch(request)
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["/bin/bash", "-c", build_startup_script(request)]
    assert pod["spec"]["restartPolicy"] == "Never"


def test_pod_asks_for_the_offers_gpus(cloud: CloudUnderTest, fake: FakeKubeAPIServer) -> None:
    request = cloud.request()
    offer = request.offer.__class__(HERE, 0.0, None, "A100:8")
    inst = cloud.provisioner.launch(with_changes(request, offer=offer))
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}


def test_pod_uses_the_yaml_image_without_its_docker_prefix(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    request = with_changes(
        cloud.request(), resources=ResourceRequest(image_id="docker:vllm/vllm-openai:v0.6.0")
    )
    inst = cloud.provisioner.launch(request)
    pod = fake.find("pods", inst.instance_id)
    assert pod is not None and pod["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.6.0"


def test_service_exposes_the_port_of_exactly_this_pod(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    request = cloud.request()
    inst = cloud.provisioner.launch(request)
    service = fake.find("services", inst.instance_id)
    assert service is not None
    assert service["spec"]["selector"] == {TAG_LAUNCH_TOKEN: request.launch_token}
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8080, 8080)]


def test_service_is_owned_by_its_pod(cloud: CloudUnderTest, fake: FakeKubeAPIServer) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    pod, service = fake.find("pods", inst.instance_id), fake.find("services", inst.instance_id)
    assert pod is not None and service is not None
    (owner,) = service["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Pod", pod["metadata"]["uid"])


def test_running_pod_is_reached_at_its_node_port(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    fake.run(inst.instance_id, host_ip="192.0.2.10")
    got = cloud.provisioner.get(inst.instance_id, HERE)
    service = fake.find("services", inst.instance_id)
    assert got is not None and service is not None and got.state == InstanceState.RUNNING
    assert got.url == f"http://192.0.2.10:{service['spec']['ports'][0]['nodePort']}"


def test_cluster_ip_service_is_reached_at_the_replica_port(
    fake: FakeKubeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_KUBERNETES_SERVICE_TYPE", "ClusterIP")
    cloud = CloudUnderTest(KubernetesProvisioner(), fake, HERE, OTHER, "cpu")
    inst = cloud.provisioner.launch(cloud.request())
    service = fake.find("services", inst.instance_id)
    assert service is not None
    assert inst.url == f"http://{service['spec']['clusterIP']}:8080"


def test_repeated_launch_finds_the_same_pod(cloud: CloudUnderTest) -> None:
    request = cloud.request()
    first = cloud.provisioner.launch(request)
    again = cloud.provisioner.launch(request)
    assert again.instance_id == first.instance_id
    assert len(cloud.provisioner.list_owned("svc")) == 1


def test_terminate_deletes_the_service_too(cloud: CloudUnderTest, fake: FakeKubeAPIServer) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    cloud.provisioner.terminate(inst.instance_id, HERE)
    assert fake.find("services", inst.instance_id) is None


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


def test_unschedulable_pod_is_pending_with_the_reason(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    fake.unschedulable(inst.instance_id, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    got = cloud.provisioner.get(inst.instance_id, HERE)
    assert got is not None and got.state == InstanceState.PENDING
    assert "Insufficient nvidia.com/gpu" in got.detail


def test_replicas_count_as_on_demand(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    assert inst.spot is False


def test_quota_refusal_leaves_nothing_behind(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.exceed_quota(HERE)
    with pytest.raises(QuotaExceeded, match="exceeded quota"):
        cloud.provisioner.launch(cloud.request(service="leaky"))
    assert cloud.provisioner.list_owned("leaky") == []
    assert fake.objects == {}


def test_rbac_refusal_is_a_credentials_error_naming_the_permissions(
    cloud: CloudUnderTest, fake: FakeKubeAPIServer
) -> None:
    fake.forbid("create")
    with pytest.raises(CredentialsError, match="create/get/list/delete on pods and services"):
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
