"""The GCP adapter at the wire: real google-cloud-compute clients against a local fake of the
Compute Engine REST API (tests/fakes/gcp_compute.py), pointed there by SERVE_GCP_API_ENDPOINT,
and google-cloud-storage against gcp-storage-emulator (STORAGE_EMULATOR_HOST) for bundles.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import compute_v1

from policies.types import Location, Offer
from provisioners.base import (
    TAG_AGENT_PORT,
    TAG_CONTROLLER_ID,
    TAG_LAUNCH_TOKEN,
    TAG_MANAGED_BY,
    TAG_REPLICA_ID,
    TAG_SERVICE,
    Accelerator,
    Bundle,
    Instance,
    InstanceState,
    LaunchRequest,
    ResourceRequest,
    agent_port,
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
from provisioners.gcp_resources import STATES, agent_firewall_name, firewall_name
from provisioners.startup_script import build_boot_script
from tests.fakes import gcp_errors_bodies as bodies
from tests.fakes.gcp_compute import FakeGCPCompute
from tests.provisioners.contract_suite import *  # noqa: F403
from tests.provisioners.contract_suite import CloudUnderTest, launch_outcome, terminate_fully
from tests.provisioners.object_store_kits import GCSKit, new_installation_id
from tests.provisioners.test_object_stores import fetch, make_bundle
from tests.support.processes import free_port

ZONE_A = Location("gcp", "us-central1", "us-central1-a")
ZONE_B = Location("gcp", "us-east1", "us-east1-b")


@pytest.fixture
def fake() -> Iterator[FakeGCPCompute]:
    server = FakeGCPCompute(project="test-project")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gcp(fake: FakeGCPCompute, gcs_kit: GCSKit, monkeypatch: pytest.MonkeyPatch) -> GCPProvisioner:
    monkeypatch.setenv("SERVE_GCP_API_ENDPOINT", fake.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_kit.endpoint)
    return GCPProvisioner(installation=new_installation_id())


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


def test_startup_script_metadata_is_the_shared_boot_script_without_the_job(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    req = cloud.request(service="chat", replica_id=4)
    inst = cloud.provisioner.launch(req)
    items = {i["key"]: i["value"] for i in fake.instance(inst.instance_id)["metadata"]["items"]}
    script = items["startup-script"]
    assert script == build_boot_script(req, None, cloud="gcp", agent_port=agent_port(os.environ))
    for job_text in ("echo setup", "python3 -m http.server 8080", "MODEL"):
        assert job_text not in script


def test_instances_report_the_agent_port_they_booted_with(
    fake: FakeGCPCompute, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_GCP_API_ENDPOINT", fake.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    monkeypatch.setenv("SERVE_AGENT_PORT", "47001")
    launcher = CloudUnderTest(GCPProvisioner(), fake, ZONE_A, ZONE_B, "g2-standard-4")
    inst = launcher.provisioner.launch(launcher.request())
    assert inst.agent_port == 47001 and fake.tags_of(inst.instance_id)[TAG_AGENT_PORT] == "47001"
    monkeypatch.setenv("SERVE_AGENT_PORT", "47002")
    got = GCPProvisioner().get(inst.instance_id, inst.location)
    assert got is not None and got.agent_port == 47001, "the label, not today's setting"


def test_firewall_rule_opens_service_port_to_that_instance_only(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    network_tags = fake.instance(inst.instance_id)["tags"]["items"]
    rule = fake.firewalls[firewall_name(inst.instance_id)]
    assert rule["direction"] == "INGRESS"
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["8080"]}]
    assert rule["targetTags"] == network_tags == [inst.instance_id]


def test_running_instance_reports_external_address_and_port(cloud: CloudUnderTest) -> None:
    inst = launch_outcome(cloud, cloud.request())
    assert isinstance(inst, Instance) and inst.state == InstanceState.RUNNING
    assert inst.url is not None and inst.url.startswith("http://203.0.113.")
    assert inst.url.endswith(":8080")


def test_terminate_deletes_the_firewall_rule_too(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    terminate_fully(cloud, inst)
    assert fake.firewalls == {}


def test_launch_refused_by_the_insert_call_starts_deleting_its_firewall_rule(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.fail_insert_http(ZONE_A, 403, bodies.QUOTA_EXCEEDED_HTTP)
    with pytest.raises(QuotaExceeded):
        cloud.provisioner.launch(cloud.request(location=ZONE_A))
    fake.finish_operations()
    assert fake.firewalls == {}


def test_preempted_instance_is_listed_until_terminated(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    fake.preempt(inst.instance_id)
    (listed,) = cloud.provisioner.list_owned("svc")
    assert (listed.instance_id, listed.state) == (inst.instance_id, InstanceState.PREEMPTED)
    assert listed.launch_token == inst.launch_token
    terminate_fully(cloud, inst)
    assert cloud.provisioner.list_owned("svc") == []
    assert cloud.provisioner.get(inst.instance_id, inst.location) is None


def test_instance_deleted_outside_spotserve_is_lost(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=False))
    fake.delete_outside_spotserve(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.LOST
    assert [i.state for i in cloud.provisioner.list_owned("svc")] == [InstanceState.LOST]


def test_spot_instance_deleted_without_a_preemption_record_is_lost(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    fake.delete_outside_spotserve(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.LOST


@pytest.mark.parametrize("spot", [False, True])
def test_instance_that_stopped_itself_is_terminated(
    cloud: CloudUnderTest, fake: FakeGCPCompute, spot: bool
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=spot))
    fake.shut_down_from_inside(inst.instance_id)
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
    refused = launch_outcome(cloud, cloud.request(location=ZONE_A))
    assert isinstance(refused, CapacityUnavailable), refused
    assert refused.code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
    assert refused.location == ZONE_A.key


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


# ---- nothing waits on an operation --------------------------------------------------------


def waited(fake: FakeGCPCompute) -> list[str]:
    return [r.path for r in fake.requests if r.path.endswith("/wait")]


def test_launch_returns_while_the_insert_is_still_running(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.operation_seconds = 3600
    inst = cloud.provisioner.launch(cloud.request())
    assert inst.state == InstanceState.PENDING
    assert waited(fake) == []
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.PENDING
    fake.finish_operations()
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.RUNNING


@pytest.mark.parametrize(
    ("refuse", "error", "code"),
    [
        ("refuse_capacity", CapacityUnavailable, "ZONE_RESOURCE_POOL_EXHAUSTED"),
        ("exceed_quota", QuotaExceeded, "QUOTA_EXCEEDED"),
    ],
)
def test_insert_that_fails_after_launch_is_reported_refused(
    cloud: CloudUnderTest,
    fake: FakeGCPCompute,
    refuse: str,
    error: type[Exception],
    code: str,
) -> None:
    getattr(fake, refuse)(ZONE_A)
    inst = cloud.provisioner.launch(cloud.request(ZONE_A, service="refused"))
    assert inst.state == InstanceState.PENDING
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.REFUSED
    assert isinstance(got.error, error) and got.error.code == code
    (listed,) = cloud.provisioner.list_owned("refused")
    assert listed.state == InstanceState.REFUSED and isinstance(listed.error, error)


def test_terminate_says_false_until_instance_and_rule_are_gone(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.operation_seconds = 3600
    inst = cloud.provisioner.launch(cloud.request())
    fake.finish_operations()
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is False
    assert fake.instance(inst.instance_id)["status"] == "STOPPING"
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is False
    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert len(deletes) == 1, "a repeat polls the delete it started"
    fake.finish_operations()
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is False
    assert fake.firewalls, "the rules' deletes have only started"
    fake.finish_operations()
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is True
    assert fake.firewalls == {} and fake.instances == {}
    assert waited(fake) == []


# ---- instance statuses ----------------------------------------------------------------------


def test_every_instance_status_of_the_v1_api_has_a_state() -> None:
    assert {s.name for s in compute_v1.Instance.Status} <= set(STATES)


def test_spot_vm_is_preempted_at_every_step_of_its_way_down(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    assert cloud.provisioner.get(inst.instance_id, inst.location) is not None
    fake.preempt(inst.instance_id)
    states = []
    while inst.instance_id in {name for _, name in fake.instances}:
        got = cloud.provisioner.get(inst.instance_id, inst.location)
        assert got is not None
        states.append(got.state)
    assert fake.observed[inst.instance_id][-3:] == ["PENDING_STOP", "STOPPING", "DEPROVISIONING"]
    assert states == [InstanceState.PREEMPTED] * 3
    gone = cloud.provisioner.get(inst.instance_id, inst.location)
    assert gone is not None and gone.state == InstanceState.PREEMPTED


# ---- timeouts and ingress ---------------------------------------------------------------------


def test_a_hung_api_costs_the_call_timeout_not_the_tick(
    fake: FakeGCPCompute, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    gcp = GCPProvisioner(api_endpoint=fake.url, timeouts=(0.5, 0.5))
    fake.stall_seconds = 3
    started = time.monotonic()
    with pytest.raises(TransientError):
        gcp.get("svc-1-abc", ZONE_A)
    assert time.monotonic() - started < 2.5


def test_firewall_rule_admits_only_serve_ingress_cidr(
    fake: FakeGCPCompute, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_INGRESS_CIDR", "198.51.100.0/24")
    gcp = GCPProvisioner(project="test-project", api_endpoint=fake.url)
    cloud = CloudUnderTest(gcp, fake, ZONE_A, ZONE_B, "g2-standard-4")
    inst = cloud.provisioner.launch(cloud.request())
    fake.finish_operations()
    rule = fake.firewalls[firewall_name(inst.instance_id)]
    assert rule["sourceRanges"] == ["198.51.100.0/24"]


def terminate_finishing_operations(
    cloud: CloudUnderTest, fake: FakeGCPCompute, inst: Instance
) -> None:
    """terminate until done, with Compute's operations ending between the calls."""
    for _ in range(10):
        if cloud.provisioner.terminate(inst.instance_id, inst.location):
            return
        fake.finish_operations()
    pytest.fail(f"{inst.instance_id} not gone after 10 calls")


def test_terminate_during_the_insert_waits_for_the_instance_it_cannot_see_yet(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    """A delete answering 404 while the insert runs must not be taken as "gone"."""
    fake.operation_seconds = 3600
    fake.hide_inserting = True
    inst = cloud.provisioner.launch(cloud.request())
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is False
    fake.finish_operations()
    terminate_finishing_operations(cloud, fake, inst)
    assert fake.instances == {} and fake.firewalls == {}


def test_terminate_while_the_instance_is_being_created_is_not_done_yet(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.operation_seconds = 3600
    inst = cloud.provisioner.launch(cloud.request())
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is False
    fake.finish_operations()
    terminate_finishing_operations(cloud, fake, inst)
    assert fake.instances == {} and fake.firewalls == {}


# ---- the agent's port -------------------------------------------------------------------------


def test_agent_port_is_open_to_the_controller_cidr_only(
    fake: FakeGCPCompute, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_INGRESS_CIDR", "0.0.0.0/0")
    monkeypatch.setenv("SERVE_CONTROLLER_CIDR", "203.0.113.7/32")
    monkeypatch.setenv("SERVE_AGENT_PORT", "47010")
    gcp = GCPProvisioner(project="test-project", api_endpoint=fake.url)
    cloud = CloudUnderTest(gcp, fake, ZONE_A, ZONE_B, "g2-standard-4")
    inst = cloud.provisioner.launch(cloud.request())
    fake.finish_operations()
    service = fake.firewalls[firewall_name(inst.instance_id)]
    agent = fake.firewalls[agent_firewall_name(inst.instance_id)]
    assert agent["sourceRanges"] == ["203.0.113.7/32"]
    assert agent["allowed"] == [{"IPProtocol": "tcp", "ports": ["47010"]}]
    assert agent["targetTags"] == [inst.instance_id]
    assert agent["description"] == service["description"], "the same ownership record"
    assert service["allowed"] == [{"IPProtocol": "tcp", "ports": ["8080"]}]


def test_a_leftover_agent_rule_is_listed_and_reaped(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=False))
    fake.finish_operations()
    fake.delete_outside_spotserve(inst.instance_id)
    del fake.firewalls[firewall_name(inst.instance_id)]
    (left,) = cloud.provisioner.list_owned("svc")
    assert (left.instance_id, left.state) == (inst.instance_id, InstanceState.LOST)
    terminate_fully(cloud, left)
    assert fake.firewalls == {} and cloud.provisioner.list_owned("svc") == []


def test_launch_refused_by_the_insert_call_closes_the_agent_port_too(
    cloud: CloudUnderTest, fake: FakeGCPCompute
) -> None:
    fake.fail_insert_http(ZONE_A, 403, bodies.QUOTA_EXCEEDED_HTTP)
    with pytest.raises(QuotaExceeded):
        cloud.provisioner.launch(cloud.request(location=ZONE_A))
    fake.finish_operations()
    assert fake.firewalls == {}


# ---- bundles in GCS ---------------------------------------------------------------------------


def with_bundle(cloud: CloudUnderTest, bundle: Bundle, service: str = "svc") -> LaunchRequest:
    return dataclasses.replace(cloud.request(service=service), bundle=bundle)


def bundle_url_of(fake: FakeGCPCompute, instance_id: str) -> str:
    items = {i["key"]: i["value"] for i in fake.instance(instance_id)["metadata"]["items"]}
    script = items["startup-script"]
    (line,) = [ln for ln in script.splitlines() if '"bundle_url"' in ln]
    start = line.index('"bundle_url": "') + len('"bundle_url": "')
    return line[start : line.index('"', start)]


def test_launch_puts_the_bundle_in_gcs_and_the_boot_script_fetches_it_signed(
    cloud: CloudUnderTest, fake: FakeGCPCompute, gcs_kit: GCSKit, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path)
    req = with_bundle(cloud, bundle)
    inst = cloud.provisioner.launch(req)
    url = bundle_url_of(fake, inst.instance_id)
    assert "X-Goog-Signature=" in url
    assert fetch(url) == bundle.path.read_bytes()
    items = {i["key"]: i["value"] for i in fake.instance(inst.instance_id)["metadata"]["items"]}
    assert items["startup-script"] == build_boot_script(
        req, url, cloud="gcp", agent_port=agent_port(os.environ)
    )


def test_a_store_that_fails_fails_the_launch_and_creates_nothing(
    cloud: CloudUnderTest, fake: FakeGCPCompute, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    gcp = GCPProvisioner(installation=new_installation_id())
    with pytest.raises(TransientError):
        gcp.launch(with_bundle(cloud, make_bundle(tmp_path)))
    fake.finish_operations()
    assert fake.instances == {} and fake.firewalls == {}


def test_release_empties_the_services_bundles_and_no_other(
    cloud: CloudUnderTest, gcs_kit: GCSKit, tmp_path: Path
) -> None:
    gcp = cloud.provisioner
    for service in ("web", "web2"):
        inst = gcp.launch(with_bundle(cloud, make_bundle(tmp_path, name=service), service))
        terminate_fully(cloud, inst)
    assert isinstance(gcp, GCPProvisioner)
    bucket = gcp.bundles.ensure_bucket()
    assert gcs_kit.keys(bucket, "bundles/web/")
    assert gcp.release("web") is True
    assert gcs_kit.keys(bucket, "bundles/web/") == []
    assert len(gcs_kit.keys(bucket, "bundles/web2/")) == 1


def test_gs_bucket_mounts_are_signed_for_the_replica(
    cloud: CloudUnderTest, gcs_kit: GCSKit
) -> None:
    gcp = cloud.provisioner
    assert isinstance(gcp, GCPProvisioner)
    gcs_kit.gcs.create_bucket("datasets-for-gcp")
    gcs_kit.write("datasets-for-gcp", "eval/a.json", b"{}")
    (signed,) = gcp.sign_source("gs://datasets-for-gcp/eval/a.json", 600) or []
    assert fetch(signed.url) == b"{}"
    assert gcp.sign_source("s3://elsewhere/x", 600) is None
