"""The GCP adapter at the wire: real google-cloud-compute clients against a local fake of the
Compute Engine REST API (tests/fakes/gcp_compute.py), pointed there by SERVE_GCP_API_ENDPOINT.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest

from policies.types import Location, Offer
from provisioners.base import (
    TAG_CONTROLLER_ID,
    TAG_LAUNCH_TOKEN,
    TAG_MANAGED_BY,
    TAG_REPLICA_ID,
    TAG_SERVICE,
    Accelerator,
    InstanceState,
    LaunchRequest,
    ResourceRequest,
)
from provisioners.catalog import Catalog, CatalogEntry
from provisioners.errors import (
    CapacityUnavailable,
    CredentialsError,
    InvalidRequest,
    QuotaExceeded,
    TransientError,
)
from provisioners.gcp import GCPProvisioner
from provisioners.startup_script import build_startup_script
from tests.fakes import gcp_errors_bodies as bodies
from tests.fakes.gcp_compute import FakeGCPCompute
from tests.provisioners.contract_suite import *  # noqa: F403
from tests.provisioners.contract_suite import CloudUnderTest

ZONE_A = Location("gcp", "us-central1", "us-central1-a")
ZONE_B = Location("gcp", "us-east1", "us-east1-b")


@pytest.fixture
def fake() -> Iterator[FakeGCPCompute]:
    server = FakeGCPCompute(project="test-project")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gcp(fake: FakeGCPCompute, monkeypatch: pytest.MonkeyPatch) -> GCPProvisioner:
    monkeypatch.setenv("SERVE_GCP_API_ENDPOINT", fake.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    return GCPProvisioner()


@pytest.fixture
def cloud(gcp: GCPProvisioner, fake: FakeGCPCompute) -> CloudUnderTest:
    return CloudUnderTest(gcp, fake, ZONE_A, ZONE_B, "g2-standard-4")


def test_spot_instance_is_spot_model_deleted_on_preemption(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    scheduling = fake.instance(inst.instance_id)["scheduling"]
    assert scheduling["provisioningModel"] == "SPOT"
    assert scheduling["instanceTerminationAction"] == "DELETE"
    assert scheduling["automaticRestart"] is False


def test_on_demand_instance_is_standard_model(cloud: CloudUnderTest, fake: FakeGCPCompute) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=False))
    scheduling = fake.instance(inst.instance_id)["scheduling"]
    assert scheduling["provisioningModel"] == "STANDARD"
    assert "instanceTerminationAction" not in scheduling


def test_instance_and_boot_disk_carry_ownership_labels(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    req = cloud.request(service="chat", replica_id=3)
    inst = cloud.provisioner.launch(req)
    sent = fake.instance(inst.instance_id)
    for labels in (sent["labels"], sent["disks"][0]["initializeParams"]["labels"]):
        assert labels[TAG_MANAGED_BY] == "spotserve"
        assert labels[TAG_SERVICE] == "chat"
        assert labels[TAG_REPLICA_ID] == "3"
        assert labels[TAG_LAUNCH_TOKEN] == req.launch_token
        assert labels[TAG_CONTROLLER_ID] == "ctrl-test"


def test_label_values_are_lowercased_for_gcp(cloud: CloudUnderTest, fake: FakeGCPCompute) -> None:
    req = dataclasses.replace(cloud.request(), controller_id="Ctrl.Main")
    inst = cloud.provisioner.launch(req)
    assert fake.tags_of(inst.instance_id)[TAG_CONTROLLER_ID] == "ctrl-main"


def test_startup_script_metadata_is_the_shared_replica_script(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    req = cloud.request(service="chat", replica_id=4)
    inst = cloud.provisioner.launch(req)
    items = {i["key"]: i["value"] for i in fake.instance(inst.instance_id)["metadata"]["items"]}
    script = items["startup-script"]
    assert script == build_startup_script(req)
    for text in ("SERVE_SERVICE_NAME", "chat", "SERVE_REPLICA_ID", "SERVE_REPLICA_PORT", "MODEL"):
        assert text in script
    assert script.index("echo setup") < script.index("python3 -m http.server 8080")


def test_firewall_rule_opens_service_port_to_that_instance_only(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    network_tags = fake.instance(inst.instance_id)["tags"]["items"]
    (rule,) = fake.firewalls.values()
    assert rule["direction"] == "INGRESS"
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["8080"]}]
    assert rule["targetTags"] == network_tags == [inst.instance_id]


def test_launch_returns_external_address_and_port(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    assert inst.url is not None and inst.url.startswith("http://203.0.113.")
    assert inst.url.endswith(":8080")


def test_terminate_deletes_the_firewall_rule_too(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    cloud.provisioner.terminate(inst.instance_id, inst.location)
    assert fake.firewalls == {}


def test_refused_launch_deletes_its_firewall_rule(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.refuse_capacity(ZONE_A)
    with pytest.raises(CapacityUnavailable):
        cloud.provisioner.launch(cloud.request(location=ZONE_A))
    assert fake.firewalls == {}


def test_preempted_instance_is_listed_until_terminated(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    fake.preempt(inst.instance_id)
    (listed,) = cloud.provisioner.list_owned("svc")
    assert (listed.instance_id, listed.state) == (inst.instance_id, InstanceState.PREEMPTED)
    assert listed.launch_token == inst.launch_token
    cloud.provisioner.terminate(inst.instance_id, inst.location)
    assert cloud.provisioner.list_owned("svc") == []
    assert cloud.provisioner.get(inst.instance_id, inst.location) is None


def test_deleted_on_demand_instance_is_not_reported_preempted(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=False))
    del fake.instances[(ZONE_A.zone, inst.instance_id)]
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.TERMINATED


def test_repeated_launch_with_same_token_returns_the_same_instance(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    req = cloud.request()
    first = cloud.provisioner.launch(req)
    again = cloud.provisioner.launch(req)
    assert again.instance_id == first.instance_id
    assert len(fake.instances) == 1


def test_capacity_error_with_details_is_capacity_unavailable(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.refuse_capacity(ZONE_A, with_details=True)
    with pytest.raises(CapacityUnavailable) as err:
        cloud.provisioner.launch(cloud.request(location=ZONE_A))
    assert err.value.code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    assert err.value.location == ZONE_A.key


def test_quota_error_on_the_insert_call_is_quota_exceeded(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.fail_insert_http(ZONE_A, 403, bodies.QUOTA_EXCEEDED_HTTP)
    with pytest.raises(QuotaExceeded) as err:
        cloud.provisioner.launch(cloud.request(location=ZONE_A))
    assert err.value.code == "quotaExceeded"


def test_invalid_argument_is_invalid_request_and_not_retried(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.fail_insert_http(ZONE_A, 400, bodies.INVALID_ARGUMENT)
    with pytest.raises(InvalidRequest) as err:
        cloud.provisioner.launch(cloud.request(location=ZONE_A))
    assert not err.value.try_elsewhere and not err.value.retry_later
    assert "machineType" in err.value.message


def test_permission_denied_is_credentials_error_with_fix(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.fail_insert_http(ZONE_A, 403, bodies.PERMISSION_DENIED)
    with pytest.raises(CredentialsError) as err:
        cloud.provisioner.launch(cloud.request(location=ZONE_A))
    assert "gcloud auth application-default login" in err.value.message


def test_rate_limit_is_retried_later(cloud: CloudUnderTest, fake: FakeGCPCompute) -> None:
    fake.fail_insert_http(ZONE_A, 429, bodies.RATE_LIMITED)
    with pytest.raises(TransientError) as err:
        cloud.provisioner.launch(cloud.request(location=ZONE_A))
    assert err.value.retry_later


def test_check_reports_usable_project(cloud: CloudUnderTest) -> None:
    result = cloud.provisioner.check()
    assert result.usable and "test-project" in result.reason


def test_check_reports_rejected_credentials_with_a_hint(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.reject_credentials()
    result = cloud.provisioner.check()
    assert not result.usable
    assert "gcloud auth application-default login" in result.hint


def test_missing_project_is_credentials_error(
    fake: FakeGCPCompute, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.setenv("SERVE_GCP_API_ENDPOINT", fake.url)
    result = GCPProvisioner().check()
    assert not result.usable and "GOOGLE_CLOUD_PROJECT" in result.reason


def test_n1_machine_gets_its_gpu_attached(fake: FakeGCPCompute) -> None:
    catalog = Catalog(
        [
            CatalogEntry(
                "gcp", "n1-standard-8", "T4", 1, 8, 30, "us-central1", "us-central1-a", 0.73, 0.2
            )
        ]
    )
    gcp = GCPProvisioner(project="test-project", api_endpoint=fake.url, catalog=catalog)
    offer = Offer(ZONE_A, 0.73, 0.2, "n1-standard-8")
    req = LaunchRequest("svc", 1, uuid.uuid4().hex, "ctrl", offer, True, 8080, "serve")
    inst = gcp.launch(req)
    (gpu,) = fake.instance(inst.instance_id)["guestAccelerators"]
    assert gpu["acceleratorType"].endswith("/acceleratorTypes/nvidia-tesla-t4")
    assert gpu["acceleratorCount"] == 1
    assert fake.instance(inst.instance_id)["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_offers_are_the_catalogs_gcp_rows_cheapest_first() -> None:
    rows = [
        CatalogEntry("gcp", "g2-standard-4", "L4", 1, 4, 16, "us-east1", "us-east1-b", 0.8, 0.3),
        CatalogEntry(
            "gcp", "g2-standard-4", "L4", 1, 4, 16, "us-central1", "us-central1-a", 0.7, 0.2
        ),
        CatalogEntry("aws", "g6.xlarge", "L4", 1, 4, 16, "us-east-1", "us-east-1a", 0.8, 0.1),
    ]
    gcp = GCPProvisioner(project="p", catalog=Catalog(rows))
    offers = gcp.offers(ResourceRequest(accelerators=(Accelerator("L4", 1),), use_spot=True))
    assert [o.location.zone for o in offers] == ["us-central1-a", "us-east1-b"]
