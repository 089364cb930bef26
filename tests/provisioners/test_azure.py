"""The Azure adapter at the wire: real azure-mgmt-compute/network clients against a local fake
of the ARM REST API (tests/fakes/azure_arm.py), pointed there by SERVE_AZURE_ARM_ENDPOINT.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import OSProfile, VirtualMachine, VirtualMachineProperties
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import NetworkSecurityGroup, SecurityRule

from policies.types import Location
from provisioners.azure import AzureProvisioner, _LocalEndpointToken
from provisioners.azure_ssh import ssh_public_key
from provisioners.base import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    TAG_AGENT_PORT,
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
    ProvisionError,
    QuotaExceeded,
    SpotUnavailable,
    TransientError,
)
from provisioners.object_store import SignsBucketSources, bucket_name
from provisioners.startup_script import build_boot_script
from replica_manager.agent_client import AgentClient, AgentUnreachable
from tests.fakes import azure_errors_bodies as bodies
from tests.fakes.azure_arm import IP, NIC, NSG, VM, VNET, FakeAzureARM
from tests.fakes.azure_boot import PREEMPT_NOTICE_SECONDS, BootedVM
from tests.provisioners.contract_suite import *  # noqa: F403
from tests.provisioners.contract_suite import CloudUnderTest, terminate_fully
from tests.provisioners.object_store_kits import AzureKit, new_installation_id
from tests.support.processes import wait_until

EAST_1 = Location("azure", "eastus", "eastus-1")
WEST_2 = Location("azure", "westus2", "westus2-2")
SIZE = "Standard_NC4as_T4_v3"
NIC_HELD_SECONDS = 0.5
"""The fake holds a NIC this long after its VM went (Azure: 180 s), so teardown tests are fast."""


@pytest.fixture
def fake() -> Iterator[FakeAzureARM]:
    server = FakeAzureARM(subscription="sub-0000", nic_reservation_seconds=NIC_HELD_SECONDS)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def azure(fake: FakeAzureARM, monkeypatch: pytest.MonkeyPatch) -> AzureProvisioner:
    monkeypatch.setenv("SERVE_AZURE_ARM_ENDPOINT", fake.url)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub-0000")
    monkeypatch.setenv("SERVE_AZURE_SSH_PUBLIC_KEY", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ test")
    return AzureProvisioner(poll_interval=0)


@pytest.fixture
def cloud(azure: AzureProvisioner, fake: FakeAzureARM) -> CloudUnderTest:
    return CloudUnderTest(azure, fake, EAST_1, WEST_2, SIZE)


def test_spot_vm_has_spot_priority_and_delete_eviction(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    props = fake.get(VM, inst.instance_id)["properties"]
    assert props["priority"] == "Spot"
    assert props["evictionPolicy"] == "Delete"
    assert props["billingProfile"] == {"maxPrice": -1}


def test_on_demand_vm_is_regular_without_eviction_policy(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=False))
    props = fake.get(VM, inst.instance_id)["properties"]
    assert props["priority"] == "Regular"
    assert "evictionPolicy" not in props


def test_vm_is_placed_in_the_offers_region_and_zone(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request(EAST_1))
    vm = fake.get(VM, inst.instance_id)
    assert (vm["location"], vm["zones"]) == ("eastus", ["1"])
    assert vm["properties"]["hardwareProfile"]["vmSize"] == SIZE


def test_every_created_resource_carries_ownership_tags(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    req = cloud.request(service="chat", replica_id=5)
    inst = cloud.provisioner.launch(req)
    for kind, name in ((VM, ""), (NIC, "-nic"), (IP, "-ip"), (NSG, "-nsg")):
        tags = fake.get(kind, inst.instance_id + name)["tags"]
        assert tags[TAG_MANAGED_BY] == "spotserve"
        assert (tags[TAG_SERVICE], tags[TAG_REPLICA_ID]) == ("chat", "5")
        assert tags[TAG_LAUNCH_TOKEN] == req.launch_token


def test_custom_data_is_the_base64_shared_boot_script_without_the_job(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    req = cloud.request(service="chat", replica_id=2)
    inst = cloud.provisioner.launch(req)
    encoded = fake.get(VM, inst.instance_id)["properties"]["osProfile"]["customData"]
    script = base64.b64decode(encoded).decode()
    assert script == build_boot_script(req, None, cloud="azure", agent_port=agent_port(os.environ))
    for job_text in ("echo setup", "python3 -m http.server 8080", "MODEL"):
        assert job_text not in script


def test_instances_report_the_agent_port_they_booted_with(
    fake: FakeAzureARM, azure: AzureProvisioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_AGENT_PORT", "47001")
    launcher = CloudUnderTest(AzureProvisioner(poll_interval=0), fake, EAST_1, WEST_2, SIZE)
    inst = launcher.provisioner.launch(launcher.request())
    assert inst.agent_port == 47001
    assert fake.get(VM, inst.instance_id)["tags"][TAG_AGENT_PORT] == "47001"
    monkeypatch.setenv("SERVE_AGENT_PORT", "47002")
    got = AzureProvisioner(poll_interval=0).get(inst.instance_id, inst.location)
    assert got is not None and got.agent_port == 47001, "the tag, not today's setting"


def test_security_group_opens_the_service_port_and_the_agent_port_only(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    rules = fake.get(NSG, inst.instance_id + "-nsg")["properties"]["securityRules"]
    by_name = {r["name"]: r["properties"] for r in rules}
    assert set(by_name) == {"serve-port", "serve-agent"}
    for props in by_name.values():
        assert (props["direction"], props["access"], props["protocol"]) == (
            "Inbound",
            "Allow",
            "Tcp",
        )
    assert by_name["serve-port"]["destinationPortRange"] == "8080"
    assert by_name["serve-agent"]["destinationPortRange"] == str(agent_port(os.environ))
    assert by_name["serve-agent"]["priority"] == 1001
    nic = fake.get(NIC, inst.instance_id + "-nic")["properties"]
    assert nic["networkSecurityGroup"]["id"].endswith(f"/{inst.instance_id}-nsg")


def test_agent_port_is_open_only_to_the_controller_cidr(
    fake: FakeAzureARM, azure: AzureProvisioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_INGRESS_CIDR", "0.0.0.0/0")
    monkeypatch.setenv("SERVE_CONTROLLER_CIDR", "192.0.2.7/32")
    monkeypatch.setenv("SERVE_AGENT_PORT", "47010")
    narrow = AzureProvisioner(poll_interval=0)
    inst = narrow.launch(CloudUnderTest(narrow, fake, EAST_1, WEST_2, SIZE).request())
    rules = fake.get(NSG, inst.instance_id + "-nsg")["properties"]["securityRules"]
    by_name = {r["name"]: r["properties"] for r in rules}
    assert by_name["serve-agent"]["sourceAddressPrefix"] == "192.0.2.7/32"
    assert by_name["serve-agent"]["destinationPortRange"] == "47010"
    assert by_name["serve-port"]["sourceAddressPrefix"] == "Internet"


def test_fake_refuses_two_security_rules_with_one_priority_and_direction(
    fake: FakeAzureARM,
) -> None:
    """ARM answers 400 SecurityRuleConflict ("Rules cannot have the same Priority and
    Direction"): the adapter's two rules must not share a priority."""
    network = NetworkManagementClient(
        _LocalEndpointToken(), "sub-0000", base_url=fake.url, retry_total=0
    )
    rule = {"protocol": "Tcp", "direction": "Inbound", "access": "Allow", "priority": 1000}
    body = NetworkSecurityGroup(
        location="eastus",
        security_rules=[
            SecurityRule(name="a", destination_port_range="1", **rule),
            SecurityRule(name="b", destination_port_range="2", **rule),
        ],
    )
    with pytest.raises(HttpResponseError) as err:
        network.network_security_groups.begin_create_or_update(
            "spotserve", "twice", body, polling=False, enforce_https=False
        )
    assert err.value.status_code == 400
    assert err.value.error is not None and err.value.error.code == "SecurityRuleConflict"


def test_a_virtual_network_deleted_behind_our_back_is_made_again(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    cloud.provisioner.launch(cloud.request(replica_id=1))
    with fake.lock:
        del fake.resources[(VNET, "spotserve-eastus-vnet")]
    with pytest.raises(InvalidRequest) as err:
        cloud.provisioner.launch(cloud.request(replica_id=2))
    assert err.value.code == "InvalidResourceReference"
    again = cloud.provisioner.launch(cloud.request(replica_id=3))
    assert again.state == InstanceState.PENDING
    assert fake.names(VNET) == ["spotserve-eastus-vnet"]


def test_launch_returns_the_public_address(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    assert inst.url is not None and inst.url.startswith("http://203.0.113.")


def test_terminate_deletes_nic_public_ip_and_security_group(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    terminate_fully(cloud, inst)
    assert [fake.names(kind) for kind in (VM, NIC, IP, NSG)] == [[], [], [], []]


def test_sku_not_available_is_capacity_unavailable(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.fail_vm_put(EAST_1, 409, bodies.sku_not_available(SIZE, "eastus"))
    with pytest.raises(CapacityUnavailable) as err:
        cloud.provisioner.launch(cloud.request(EAST_1))
    assert err.value.code == "SkuNotAvailable" and err.value.location == EAST_1.key


def test_spot_price_refusal_is_spot_unavailable(cloud: CloudUnderTest, fake: FakeAzureARM) -> None:
    fake.fail_vm_put(EAST_1, 409, bodies.spot_price_too_low(SIZE))
    with pytest.raises(SpotUnavailable) as err:
        cloud.provisioner.launch(cloud.request(EAST_1))
    assert err.value.try_elsewhere


def test_regular_cores_quota_refusal_is_quota_exceeded(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.fail_vm_put(EAST_1, 409, bodies.quota_exceeded("eastus", spot=False))
    with pytest.raises(QuotaExceeded):
        cloud.provisioner.launch(cloud.request(EAST_1, spot=False))


def test_invalid_parameter_is_invalid_request_and_not_retried(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.fail_vm_put(EAST_1, 400, bodies.INVALID_PARAMETER)
    with pytest.raises(InvalidRequest) as err:
        cloud.provisioner.launch(cloud.request(EAST_1))
    assert not err.value.try_elsewhere and not err.value.retry_later
    assert err.value.code == "InvalidParameter"


def test_authorization_failure_is_credentials_error_with_fix(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.fail_vm_put(EAST_1, 403, bodies.AUTHORIZATION_FAILED)
    with pytest.raises(CredentialsError) as err:
        cloud.provisioner.launch(cloud.request(EAST_1))
    assert "az login" in err.value.message


def test_throttling_is_retried_later(cloud: CloudUnderTest, fake: FakeAzureARM) -> None:
    fake.fail_vm_put(EAST_1, 429, bodies.TOO_MANY_REQUESTS)
    impatient = AzureProvisioner(poll_interval=0, retry_total=0)
    with pytest.raises(TransientError) as err:
        impatient.launch(cloud.request(EAST_1))
    assert err.value.retry_later


def test_missing_resource_group_names_the_fix(fake: FakeAzureARM, azure: AzureProvisioner) -> None:
    fake.groups.clear()
    result = azure.check()
    assert not result.usable and "az group create" in result.reason


def test_preempted_vm_is_listed_until_terminated(cloud: CloudUnderTest, fake: FakeAzureARM) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    fake.preempt(inst.instance_id)
    (listed,) = cloud.provisioner.list_owned("svc")
    assert (listed.instance_id, listed.state) == (inst.instance_id, InstanceState.PREEMPTED)
    assert listed.launch_token == inst.launch_token
    terminate_fully(cloud, inst)
    assert cloud.provisioner.list_owned("svc") == []
    assert cloud.provisioner.get(inst.instance_id, inst.location) is None


def test_vm_removed_while_we_were_deleting_it_is_not_reported_preempted(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    nic = fake.resources[(NIC, f"{inst.instance_id}-nic")]
    nic["tags"]["serve-vm-state"] = "deleting"
    fake.preempt(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.TERMINATED


def test_repeated_launch_with_same_token_keeps_one_vm(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    req = cloud.request()
    first = cloud.provisioner.launch(req)
    again = cloud.provisioner.launch(req)
    assert again.instance_id == first.instance_id
    assert fake.names(VM) == [first.instance_id]


def test_check_reports_usable_subscription(cloud: CloudUnderTest) -> None:
    result = cloud.provisioner.check()
    assert result.usable and "sub-0000" in result.reason


def test_check_reports_rejected_token_with_a_hint(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.reject_credentials()
    result = cloud.provisioner.check()
    assert not result.usable and "az login" in result.hint


def test_check_without_subscription_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    result = AzureProvisioner().check()
    assert not result.usable and "AZURE_SUBSCRIPTION_ID" in result.reason


def test_offers_are_the_catalogs_azure_rows_cheapest_first() -> None:
    rows = [
        CatalogEntry("azure", SIZE, "T4", 1, 4, 28, "westus2", "westus2-2", 0.53, 0.06),
        CatalogEntry("azure", SIZE, "T4", 1, 4, 28, "eastus", "eastus-1", 0.53, 0.05),
        CatalogEntry("gcp", "n1-standard-4", "T4", 1, 4, 15, "us-east1", "us-east1-b", 0.5, 0.01),
    ]
    azure = AzureProvisioner(subscription_id="s", catalog=Catalog(rows))
    offers = azure.offers(ResourceRequest(accelerators=(Accelerator("T4", 1),), use_spot=True))
    assert [o.location.zone for o in offers] == ["eastus-1", "westus2-2"]


# ---- launch returns once ARM accepted the VM; a later failure is REFUSED --------------------


def test_launch_returns_pending_while_the_vm_is_still_being_created(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.vm_create_seconds = 60
    inst = cloud.provisioner.launch(cloud.request())
    assert inst.state == InstanceState.PENDING
    assert fake.get(VM, inst.instance_id)["properties"]["provisioningState"] == "Creating"
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.PENDING


def test_slow_network_creation_is_transient_and_no_vm_is_started(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.network_create_seconds = 60
    hurried = AzureProvisioner(poll_interval=0, network_wait_seconds=0.3)
    with pytest.raises(TransientError) as err:
        hurried.launch(cloud.request())
    assert "still being created" in err.value.message
    assert fake.names(VM) == []


def test_nic_says_created_as_soon_as_the_vm_put_is_accepted(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.vm_create_seconds = 60
    inst = cloud.provisioner.launch(cloud.request())
    assert fake.get(NIC, inst.instance_id + "-nic")["tags"]["serve-vm-state"] == "created"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("AllocationFailed", CapacityUnavailable),
        ("ZonalAllocationFailed", CapacityUnavailable),
        ("OverconstrainedAllocationRequest", CapacityUnavailable),
        ("SkuNotAvailable", CapacityUnavailable),
        ("QuotaExceeded", QuotaExceeded),
    ],
)
def test_vm_that_fails_after_being_accepted_is_refused_with_the_mapped_error(
    cloud: CloudUnderTest, fake: FakeAzureARM, code: str, kind: type[Exception]
) -> None:
    fake.fail_creation(EAST_1, code, f"{code}: the message ARM gave")
    inst = cloud.provisioner.launch(cloud.request(EAST_1))
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.REFUSED
    assert isinstance(got.error, kind) and got.error.code == code
    assert got.error.location == EAST_1.key and "the message ARM gave" in got.error.message
    (listed,) = cloud.provisioner.list_owned("svc")
    assert listed.state == InstanceState.REFUSED and isinstance(listed.error, kind)


def test_allocation_failure_is_refused_and_terminate_removes_everything(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.refuse_capacity(EAST_1)
    inst = cloud.provisioner.launch(cloud.request(EAST_1))
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.REFUSED
    assert got.error is not None and got.error.code == "ZonalAllocationFailed"
    terminate_fully(cloud, inst)
    assert [fake.names(kind) for kind in (VM, NIC, IP, NSG)] == [[], [], [], []]


# ---- list_owned asks ARM only what its reference allows --------------------------------------


def test_fake_refuses_a_vm_list_expanded_without_a_filter(fake: FakeAzureARM) -> None:
    """ "Virtual Machines - List": `$expand=instanceView` needs a scale-set `$filter`."""
    compute = ComputeManagementClient(
        _LocalEndpointToken(), "sub-0000", base_url=fake.url, retry_total=0
    )
    with pytest.raises(HttpResponseError) as err:
        list(compute.virtual_machines.list("spotserve", expand="instanceView", enforce_https=False))
    assert err.value.status_code == 400
    assert err.value.error is not None and err.value.error.code == "BadRequest"


def test_list_owned_reads_instance_views_one_vm_at_a_time(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    running = [cloud.provisioner.launch(cloud.request(replica_id=i)) for i in (1, 2)]
    fake.vm_create_seconds = 60
    creating = cloud.provisioner.launch(cloud.request(replica_id=3))
    fake.requests.clear()
    states = {i.instance_id: i.state for i in cloud.provisioner.list_owned("svc")}
    assert states == {
        running[0].instance_id: InstanceState.RUNNING,
        running[1].instance_id: InstanceState.RUNNING,
        creating.instance_id: InstanceState.PENDING,
    }
    vm_lists = [r for r in fake.requests if r.path.endswith("/virtualMachines")]
    assert [r.query.get("$expand") for r in vm_lists] == [None]
    views = sorted(r.path.split("/")[-2] for r in fake.requests if r.path.endswith("/instanceView"))
    assert views == sorted(i.instance_id for i in running), "no view for a VM still Creating"


# ---- teardown goes on past a reserved NIC; leftovers stay listed until gone ------------------


def test_terminate_returns_false_while_the_nic_is_reserved_and_keeps_the_rest_listed(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    fake.nic_reservation_seconds = 600
    inst = cloud.provisioner.launch(cloud.request())
    for _ in range(3):
        assert cloud.provisioner.terminate(inst.instance_id, inst.location) is False
    assert fake.names(VM) == []
    assert [fake.names(kind) for kind in (NIC, IP, NSG)] == [
        [f"{inst.instance_id}{s}"] for s in ("-nic", "-ip", "-nsg")
    ]
    (listed,) = cloud.provisioner.list_owned("svc")
    assert (listed.instance_id, listed.state) == (inst.instance_id, InstanceState.TERMINATED)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.TERMINATED
    fake.expire_nic_reservations()
    terminate_fully(cloud, inst)
    assert [fake.names(kind) for kind in (VM, NIC, IP, NSG)] == [[], [], [], []]


def test_launch_refused_on_the_spot_leaves_parts_that_are_listed_and_reaped(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    """A VM PUT refused at once still reserves its NIC, so launch's own cleanup cannot finish:
    what is left stays listed (as TERMINATED: launch started deleting it) until terminate, called
    again by the orphan reaper, removes it."""
    fake.nic_reservation_seconds = 600
    fake.exceed_quota(EAST_1)
    with pytest.raises(QuotaExceeded):
        cloud.provisioner.launch(cloud.request(EAST_1, service="leaky"))
    (left,) = cloud.provisioner.list_owned("leaky")
    assert left.state == InstanceState.TERMINATED
    assert [fake.names(kind) for kind in (VM, NIC, IP, NSG)] == [
        [],
        [left.instance_id + "-nic"],
        [left.instance_id + "-ip"],
        [left.instance_id + "-nsg"],
    ]
    fake.expire_nic_reservations()
    terminate_fully(cloud, left)
    assert cloud.provisioner.list_owned("leaky") == []
    assert [fake.names(kind) for kind in (VM, NIC, IP, NSG)] == [[], [], [], []]


def test_public_ip_and_security_group_left_alone_are_still_listed(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    with fake.lock:
        del fake.resources[(VM, inst.instance_id)]
        del fake.resources[(NIC, inst.instance_id + "-nic")]
    (listed,) = cloud.provisioner.list_owned("svc", regions=[EAST_1.region])
    assert (listed.instance_id, listed.state) == (inst.instance_id, InstanceState.LOST)
    assert listed.launch_token == inst.launch_token and listed.controller_id == "ctrl-test"
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.LOST
    terminate_fully(cloud, inst)
    assert [fake.names(kind) for kind in (VM, NIC, IP, NSG)] == [[], [], [], []]
    assert cloud.provisioner.get(inst.instance_id, inst.location) is None


def test_list_owned_in_another_region_leaves_this_one_out(cloud: CloudUnderTest) -> None:
    cloud.provisioner.launch(cloud.request(EAST_1))
    assert cloud.provisioner.list_owned("svc", regions=[WEST_2.region]) == []


# ---- an evicted Spot VM passes through Deleting --------------------------------------------


def test_spot_vm_being_evicted_is_preempted_while_it_is_deleting(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    fake.hold_deletions = True
    fake.preempt(inst.instance_id)
    assert fake.get(VM, inst.instance_id)["properties"]["provisioningState"] == "Deleting"
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.PREEMPTED
    (listed,) = cloud.provisioner.list_owned("svc")
    assert listed.state == InstanceState.PREEMPTED
    fake.release_deletions()
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.PREEMPTED


def test_vm_spotserve_is_deleting_is_terminated_not_preempted(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    fake.hold_deletions = True
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is False
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.TERMINATED
    (listed,) = cloud.provisioner.list_owned("svc")
    assert listed.state == InstanceState.TERMINATED


def test_regular_vm_deleted_outside_spotserve_is_lost(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=False))
    fake.hold_deletions = True
    fake.delete_outside(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.LOST
    fake.release_deletions()
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.LOST


# ---- SSH key and custom data ----------------------------------------------------------------


def test_ssh_key_found_in_home_is_rsa_even_when_an_ed25519_key_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVE_AZURE_SSH_PUBLIC_KEY", raising=False)
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza mine\n")
    (tmp_path / ".ssh" / "id_rsa.pub").write_text("ssh-rsa AAAAB3Nza mine\n")
    assert ssh_public_key(home=tmp_path) == "ssh-rsa AAAAB3Nza mine"


def test_without_an_rsa_key_a_fresh_rsa_key_is_made_rather_than_using_ed25519(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVE_AZURE_SSH_PUBLIC_KEY", raising=False)
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza mine\n")
    assert ssh_public_key(home=tmp_path).startswith("ssh-rsa ")


def test_envs_of_any_size_stay_out_of_custom_data(
    cloud: CloudUnderTest, fake: FakeAzureARM
) -> None:
    """They reach the replica agent after boot, so customData's 64 KiB limit does not apply."""
    inst = cloud.provisioner.launch(replace(cloud.request(), envs={"BLOB": "x" * 70_000}))
    encoded = fake.get(VM, inst.instance_id)["properties"]["osProfile"]["customData"]
    assert "x" * 100 not in base64.b64decode(encoded).decode()


def test_fake_refuses_oversize_custom_data_like_arm(fake: FakeAzureARM) -> None:
    """OSProfile.customData: at most 65,535 bytes decoded (87,380 base64 characters)."""
    compute = ComputeManagementClient(
        _LocalEndpointToken(), "sub-0000", base_url=fake.url, retry_total=0
    )
    body = VirtualMachine(
        location="eastus",
        properties=VirtualMachineProperties(
            os_profile=OSProfile(
                computer_name="big", admin_username="u", custom_data="QUFB" * 21846
            )
        ),
    )
    with pytest.raises(HttpResponseError) as err:
        compute.virtual_machines.begin_create_or_update(
            "spotserve", "big", body, polling=False, enforce_https=False
        )
    assert err.value.status_code == 400
    assert err.value.error is not None and err.value.error.code == "InvalidParameter"
    assert "87380" in str(err.value.error.message)


# ---- timeouts and ingress ----------------------------------------------------------------------


def test_a_hung_arm_costs_the_read_timeout(fake: FakeAzureARM, azure: AzureProvisioner) -> None:
    fake.stall_seconds = 3
    impatient = AzureProvisioner(poll_interval=0, retry_total=0, read_timeout=0.2)
    with pytest.raises(TransientError):
        impatient.list_owned("svc")
    assert (azure.connect_timeout, azure.read_timeout) == (
        CONNECT_TIMEOUT_SECONDS,
        READ_TIMEOUT_SECONDS,
    )


def test_service_port_is_open_only_to_the_ingress_cidr(
    fake: FakeAzureARM, azure: AzureProvisioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_INGRESS_CIDR", "198.51.100.0/24")
    narrow = AzureProvisioner(poll_interval=0)
    inst = narrow.launch(CloudUnderTest(narrow, fake, EAST_1, WEST_2, SIZE).request())
    rules = fake.get(NSG, inst.instance_id + "-nsg")["properties"]["securityRules"]
    by_name = {r["name"]: r["properties"] for r in rules}
    assert by_name["serve-port"]["sourceAddressPrefix"] == "198.51.100.0/24"
    assert by_name["serve-agent"]["sourceAddressPrefix"] == "198.51.100.0/24", "by default"


def test_open_ingress_is_the_internet_service_tag(
    cloud: CloudUnderTest, fake: FakeAzureARM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVE_INGRESS_CIDR", raising=False)
    monkeypatch.delenv("SERVE_AWS_INGRESS_CIDR", raising=False)
    monkeypatch.delenv("SERVE_CONTROLLER_CIDR", raising=False)
    open_to_all = AzureProvisioner(poll_interval=0)
    inst = open_to_all.launch(cloud.request())
    rules = fake.get(NSG, inst.instance_id + "-nsg")["properties"]["securityRules"]
    assert {r["properties"]["sourceAddressPrefix"] for r in rules} == {"Internet"}


# ---- the bundle travels through the installation's Blob container (Azurite) ------------------


def bundle_in(tmp_path: Path, content: bytes = b"") -> Bundle:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(content or os.urandom(2048))
    return Bundle(hashlib.sha256(path.read_bytes()).hexdigest(), path, path.stat().st_size)


@pytest.fixture
def staging(
    azure_kit: AzureKit,
    fake: FakeAzureARM,
    azure: AzureProvisioner,
    monkeypatch: pytest.MonkeyPatch,
) -> AzureProvisioner:
    """An adapter whose installation's container lives in Azurite."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_kit.connection_string)
    return AzureProvisioner(installation=new_installation_id(), poll_interval=0)


def custom_data_config(fake: FakeAzureARM, instance_id: str) -> dict[str, object]:
    """The agent's boot config, as the VM's custom data carries it."""
    encoded = fake.get(VM, instance_id)["properties"]["osProfile"]["customData"]
    script = base64.b64decode(encoded).decode()
    config = script.split("<<'SPOTSERVE_CONFIG'\n", 1)[1].split("\nSPOTSERVE_CONFIG", 1)[0]
    return dict(json.loads(config))


def test_launch_stages_the_bundle_and_boots_with_its_sas_url(
    staging: AzureProvisioner, fake: FakeAzureARM, azure_kit: AzureKit, tmp_path: Path
) -> None:
    bundle = bundle_in(tmp_path)
    request = replace(CloudUnderTest(staging, fake, EAST_1, WEST_2, SIZE).request(), bundle=bundle)
    inst = staging.launch(request)
    config = custom_data_config(fake, inst.instance_id)
    assert config["bundle_digest"] == bundle.digest
    url = str(config["bundle_url"])
    container = bucket_name(staging.installation)
    assert url.startswith(f"{azure_kit.endpoint}/{container}/bundles/svc/{bundle.digest}.tar.gz?")
    with urllib.request.urlopen(url, timeout=10) as reply:  # no credentials: the SAS alone
        assert reply.read() == bundle.path.read_bytes()


def test_a_store_that_refuses_fails_the_launch_before_anything_is_created(
    fake: FakeAzureARM,
    azure: AzureProvisioner,
    azure_kit: AzureKit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = azure_kit.connection_string.replace(
        "AccountKey=", "AccountKey=" + base64.b64encode(b"not the key").decode() + "x"
    )
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    refused = AzureProvisioner(installation=new_installation_id(), poll_interval=0)
    request = replace(
        CloudUnderTest(refused, fake, EAST_1, WEST_2, SIZE).request(), bundle=bundle_in(tmp_path)
    )
    fake.requests.clear()
    with pytest.raises(ProvisionError):
        refused.launch(request)
    assert [r for r in fake.requests if r.method in ("PUT", "PATCH")] == []
    assert [fake.names(kind) for kind in (VM, NIC, IP, NSG)] == [[], [], [], []]


def test_a_bundle_without_a_storage_account_names_what_to_set(
    fake: FakeAzureARM, azure: AzureProvisioner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_KEY",
        "SERVE_AZURE_STORAGE_ACCOUNT",
    ):
        monkeypatch.delenv(name, raising=False)
    request = replace(
        CloudUnderTest(azure, fake, EAST_1, WEST_2, SIZE).request(), bundle=bundle_in(tmp_path)
    )
    with pytest.raises(CredentialsError) as err:
        azure.launch(request)
    assert "SERVE_AZURE_STORAGE_ACCOUNT" in err.value.message
    assert fake.names(VM) == []


def test_release_empties_the_services_prefix_and_keeps_the_others(
    staging: AzureProvisioner, fake: FakeAzureARM, azure_kit: AzureKit, tmp_path: Path
) -> None:
    cloud = CloudUnderTest(staging, fake, EAST_1, WEST_2, SIZE)
    staging.launch(replace(cloud.request(service="web"), bundle=bundle_in(tmp_path / "a")))
    staging.launch(replace(cloud.request(service="chat"), bundle=bundle_in(tmp_path / "b")))
    container = bucket_name(staging.installation)
    assert staging.release("web") is True
    assert azure_kit.keys(container, "bundles/web/") == []
    assert len(azure_kit.keys(container, "bundles/chat/")) == 1


def test_release_without_a_storage_account_has_nothing_to_delete(
    azure: AzureProvisioner, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_KEY",
        "SERVE_AZURE_STORAGE_ACCOUNT",
    ):
        monkeypatch.delenv(name, raising=False)
    assert AzureProvisioner(installation="ctrl-x").release("web") is True


def test_bucket_mounts_of_azure_blob_urls_are_signed_by_the_adapter(
    staging: AzureProvisioner, azure_kit: AzureKit
) -> None:
    assert isinstance(staging, SignsBucketSources)
    container = staging.bundle_store.ensure_bucket()
    azure_kit.write(container, "data/weights.bin", b"weights")
    (signed,) = staging.sign_source(azure_kit.source(container, "data/weights.bin"), 600) or []
    with urllib.request.urlopen(signed.url, timeout=10) as reply:
        assert reply.read() == b"weights"
    assert staging.sign_source("s3://elsewhere/x", 600) is None


# ---- boot mode: the fake's VMs really run their custom data ---------------------------------


@pytest.fixture
def booting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeAzureARM, AzureProvisioner]]:
    server = FakeAzureARM(nic_reservation_seconds=NIC_HELD_SECONDS, boot=True, boot_root=tmp_path)
    server.start()
    monkeypatch.setenv("SERVE_AZURE_ARM_ENDPOINT", server.url)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub-0000")
    monkeypatch.setenv("SERVE_AZURE_SSH_PUBLIC_KEY", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ test")
    monkeypatch.setenv("SERVE_TEST_LEAK", "must-not-reach-the-vm")
    yield server, AzureProvisioner(poll_interval=0)
    server.stop()


def running(fake: FakeAzureARM, azure: AzureProvisioner, inst: Instance) -> BootedVM:
    """The VM once ARM says it runs and its agent proves it holds the replica's token."""
    wait_until(
        lambda: (
            (got := azure.get(inst.instance_id, inst.location))
            and got.state == InstanceState.RUNNING
        ),
        "the VM to run",
        30,
    )
    assert inst.agent_url is not None
    wait_until(lambda: _hello(inst.agent_url, inst), "the agent to answer", 60, every=0.2)
    booted = fake.farm.find(inst.instance_id) if fake.farm else None
    assert booted is not None
    return booted


def _hello(url: str, inst: Instance) -> bool:
    try:
        AgentClient(url, TOKEN, None, timeout=2).hello()
        return True
    except AgentUnreachable:
        return False


TOKEN = "token-of-the-booted-vm"


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is left (killed ones are reaped by init shortly)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def boot_request(fake: FakeAzureARM, azure: AzureProvisioner) -> LaunchRequest:
    return replace(
        CloudUnderTest(azure, fake, EAST_1, WEST_2, SIZE).request(spot=True), agent_token=TOKEN
    )


def test_boot_mode_vm_runs_its_custom_data_at_its_own_loopback_address(
    booting: tuple[FakeAzureARM, AzureProvisioner],
) -> None:
    fake, azure = booting
    inst = azure.launch(boot_request(fake, azure))
    assert inst.address is not None and inst.address.startswith("127.78.")
    vm = running(fake, azure, inst)
    assert vm.address == inst.address
    assert {p.name for p in vm.root.iterdir()} >= {"home", "agent", "replica.log", "boot.sh"}
    environ = dict(
        line.split("=", 1)
        for line in Path(f"/proc/{vm.process.pid}/environ").read_text().split("\0")
        if "=" in line
    )
    assert environ["SERVE_REPLICA_HOST"] == inst.address
    assert environ["HOME"] == str(vm.root / "home")
    assert environ["SERVE_METADATA_URL"] == f"{fake.url}/vm/{inst.instance_id}"
    assert "SERVE_TEST_LEAK" not in environ, "the VM gets an explicit environment"


def test_boot_mode_deleting_the_vm_kills_its_process_group(
    booting: tuple[FakeAzureARM, AzureProvisioner],
) -> None:
    fake, azure = booting
    inst = azure.launch(boot_request(fake, azure))
    vm = running(fake, azure, inst)
    azure.terminate(inst.instance_id, inst.location)
    wait_until(lambda: not group_alive(vm.process.pid), "the VM's processes to die", 10)


def test_boot_mode_eviction_posts_a_preempt_event_that_the_agent_reports(
    booting: tuple[FakeAzureARM, AzureProvisioner],
) -> None:
    fake, azure = booting
    inst = azure.launch(boot_request(fake, azure))
    vm = running(fake, azure, inst)
    fake.preempt(inst.instance_id, notice_seconds=PREEMPT_NOTICE_SECONDS)
    assert inst.agent_url is not None
    client = AgentClient(inst.agent_url, TOKEN, None, timeout=5)
    client.hello()
    notice = wait_until(client.notice, "the agent to report the Preempt event", 30)
    assert notice["kind"] == "preemption" and notice["cloud"] == "azure"
    assert [e["EventType"] for e in notice["detail"]] == ["Preempt"]
    assert vm.alive(), "evicted only once the notice has run out"


def test_boot_mode_eviction_kills_the_vm_when_the_notice_runs_out(
    booting: tuple[FakeAzureARM, AzureProvisioner],
) -> None:
    fake, azure = booting
    inst = azure.launch(boot_request(fake, azure))
    vm = running(fake, azure, inst)
    fake.preempt(inst.instance_id)
    wait_until(lambda: not group_alive(vm.process.pid), "the evicted VM's processes to die", 10)
    got = azure.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.PREEMPTED


def test_metadata_service_wants_the_metadata_header_like_imds(
    booting: tuple[FakeAzureARM, AzureProvisioner],
) -> None:
    fake, azure = booting
    inst = azure.launch(boot_request(fake, azure))
    running(fake, azure, inst)
    url = f"{fake.url}/vm/{inst.instance_id}/metadata/scheduledevents"
    version = {"api-version": "2020-07-01"}
    assert httpx.get(url, params=version).status_code == 400
    assert httpx.get(url, headers={"Metadata": "true"}).status_code == 400
    forwarded = {"Metadata": "true", "X-Forwarded-For": "10.0.0.1"}
    assert httpx.get(url, params=version, headers=forwarded).status_code == 400
    reply = httpx.get(url, params=version, headers={"Metadata": "true"})
    assert reply.status_code == 200
    assert reply.json() == {"DocumentIncarnation": 1, "Events": []}


def test_fake_controls_crash_a_vm_and_evict_another_over_http(
    booting: tuple[FakeAzureARM, AzureProvisioner],
) -> None:
    """What the README's operator uses: the fake's own routes, beside ARM's."""
    fake, azure = booting
    crashed = azure.launch(boot_request(fake, azure))
    evicted = azure.launch(replace(boot_request(fake, azure), replica_id=2))
    crashed_vm = running(fake, azure, crashed)
    running(fake, azure, evicted)
    listed = httpx.get(f"{fake.url}/_fake/vms").json()["value"]
    assert {v["name"] for v in listed} == {crashed.instance_id, evicted.instance_id}
    assert httpx.post(f"{fake.url}/_fake/vms/{crashed.instance_id}/crash").status_code == 200
    wait_until(lambda: not group_alive(crashed_vm.process.pid), "the crashed VM's processes", 10)
    got = azure.get(crashed.instance_id, crashed.location)
    assert got is not None and got.state == InstanceState.RUNNING, "ARM still shows it running"
    reply = httpx.post(
        f"{fake.url}/_fake/vms/{evicted.instance_id}/preempt", params={"notice_seconds": "0"}
    )
    assert reply.status_code == 200
    got = azure.get(evicted.instance_id, evicted.location)
    assert got is not None and got.state == InstanceState.PREEMPTED
