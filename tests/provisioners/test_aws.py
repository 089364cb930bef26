"""The AWS adapter against moto's server (real boto3 HTTP calls), with refusals injected by
an error proxy that answers with EC2's real error bodies."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from controller.bundle import pack
from policies.types import Location, Offer
from provisioners.aws import USER_DATA_LIMIT, AWSProvisioner
from provisioners.aws_images import (
    CPU_PARAMETER,
    OSS_DRIVER_GPU_PARAMETER,
    PROPRIETARY_DRIVER_GPU_PARAMETER,
)
from provisioners.base import (
    TAG_AGENT_PORT,
    TAG_CONTROLLER_ID,
    TAG_LAUNCH_TOKEN,
    TAG_REPLICA_ID,
    TAG_SERVICE,
    Accelerator,
    Bundle,
    InstanceState,
    LaunchRequest,
    ResourceRequest,
    agent_port,
)
from provisioners.errors import (
    CapacityUnavailable,
    CredentialsError,
    InvalidRequest,
    ProvisionError,
    QuotaExceeded,
    SpotUnavailable,
    TransientError,
)
from provisioners.s3_store import S3BundleStore
from provisioners.startup_script import build_boot_script
from tests.fakes.moto_ec2 import MotoEC2
from tests.provisioners.contract_suite import *  # noqa: F403
from tests.provisioners.contract_suite import CloudUnderTest

EAST = Location("aws", "us-east-1", "us-east-1a")
WEST = Location("aws", "us-west-2", "us-west-2b")
MOTO_IMAGE_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


@pytest.fixture(scope="module")
def moto_ec2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoEC2]:
    """moto behind the error proxy, and the environment a user would set to point boto3 at it."""
    fake = MotoEC2(regions=(EAST.region, WEST.region)).start()
    home = tmp_path_factory.mktemp("aws-home")
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "SERVE_AWS_IMAGE_ID"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ENDPOINT_URL", fake.endpoint_url)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("AWS_CONFIG_FILE", str(home / "no-config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-credentials"))
        env.setenv("SERVE_AWS_REGIONS", f"{EAST.region},{WEST.region}")
        env.setenv("SERVE_AWS_IMAGE_PARAMETER", MOTO_IMAGE_PARAMETER)
        yield fake
    fake.stop()


@pytest.fixture(scope="module")
def session(moto_ec2: MotoEC2) -> boto3.session.Session:
    """One boto3 session for the module: loading EC2's service model once saves seconds."""
    return boto3.session.Session()


@pytest.fixture
def fake(moto_ec2: MotoEC2) -> MotoEC2:
    """The module's moto, with no refusal programmed and no call recorded.

    moto's state is kept between tests (re-creating its regions costs seconds), so each test
    looks only at what its own launches made.
    """
    moto_ec2.clear()
    return moto_ec2


@pytest.fixture
def cloud(fake: MotoEC2, session: boto3.session.Session) -> CloudUnderTest:
    return CloudUnderTest(AWSProvisioner(session=session), fake, EAST, WEST, "g5.xlarge")


def run_instances_calls(fake: MotoEC2) -> list[dict[str, str]]:
    assert fake.proxy is not None
    return fake.proxy.received("RunInstances")


def groups_of(fake: MotoEC2, launch_token: str, region: str = EAST.region) -> list[dict[str, Any]]:
    groups = fake.client(region).describe_security_groups(
        Filters=[{"Name": f"tag:{TAG_LAUNCH_TOKEN}", "Values": [launch_token]}]
    )["SecurityGroups"]
    return list(groups)


def test_spot_launch_asks_ec2_for_a_one_time_spot_instance(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    cloud.provisioner.launch(cloud.request(spot=True))
    sent = run_instances_calls(fake)[-1]
    assert sent["InstanceMarketOptions.MarketType"] == "spot"
    assert sent["InstanceMarketOptions.SpotOptions.SpotInstanceType"] == "one-time"
    assert sent["InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"] == "terminate"


def test_on_demand_launch_sends_no_market_options(cloud: CloudUnderTest, fake: MotoEC2) -> None:
    cloud.provisioner.launch(cloud.request(spot=False))
    sent = run_instances_calls(fake)[-1]
    assert not any(key.startswith("InstanceMarketOptions") for key in sent)


def test_launch_places_the_instance_in_the_offers_zone_and_type(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    inst = cloud.provisioner.launch(cloud.request(WEST))
    described = fake.describe(inst.instance_id)
    assert described["Placement"]["AvailabilityZone"] == "us-west-2b"
    assert described["InstanceType"] == "g5.xlarge"


def test_user_data_is_the_shared_boot_script(cloud: CloudUnderTest, fake: MotoEC2) -> None:
    request = cloud.request()
    cloud.provisioner.launch(request)
    sent = run_instances_calls(fake)[-1]
    expected = build_boot_script(request, None, cloud="aws", agent_port=agent_port(os.environ))
    assert base64.b64decode(sent["UserData"]).decode() == expected


def test_instances_report_the_agent_port_they_booted_with(
    fake: MotoEC2, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_AGENT_PORT", "47001")
    launcher = CloudUnderTest(AWSProvisioner(session=session), fake, EAST, WEST, "g5.xlarge")
    inst = launcher.provisioner.launch(launcher.request())
    assert inst.agent_port == 47001 and fake.tags_of(inst.instance_id)[TAG_AGENT_PORT] == "47001"
    monkeypatch.setenv("SERVE_AGENT_PORT", "47002")
    got = AWSProvisioner(session=session).get(inst.instance_id, inst.location)
    assert got is not None and got.agent_port == 47001, "the tag, not today's setting"


def test_launch_token_makes_the_client_token(cloud: CloudUnderTest, fake: MotoEC2) -> None:
    cloud.provisioner.launch(cloud.request())
    cloud.provisioner.launch(cloud.request())
    tokens = [c["ClientToken"] for c in run_instances_calls(fake)]
    assert len(set(tokens)) == 2 and all(0 < len(t) <= 64 for t in tokens)


def test_launch_reports_address_and_service_port(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.address and got.url == f"http://{got.address}:8080"


def test_security_group_opens_only_the_service_and_agent_ports(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    request = cloud.request()
    cloud.provisioner.launch(request)
    (group,) = groups_of(fake, request.launch_token)
    rules = group["IpPermissions"]
    opened = sorted((r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules)
    agent = agent_port(os.environ)
    assert opened == sorted([("tcp", 8080, 8080), ("tcp", agent, agent)])


def test_security_group_carries_the_ownership_tags(cloud: CloudUnderTest, fake: MotoEC2) -> None:
    request = cloud.request(replica_id=4)
    cloud.provisioner.launch(request)
    (group,) = groups_of(fake, request.launch_token)
    tags = {t["Key"]: t["Value"] for t in group["Tags"]}
    assert tags[TAG_LAUNCH_TOKEN] == request.launch_token and tags[TAG_REPLICA_ID] == "4"


def test_instance_volumes_carry_the_ownership_tags(cloud: CloudUnderTest, fake: MotoEC2) -> None:
    request = cloud.request()
    inst = cloud.provisioner.launch(request)
    volumes = fake.client(EAST.region).describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [inst.instance_id]}]
    )["Volumes"]
    assert volumes
    for volume in volumes:
        tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
        assert tags[TAG_SERVICE] == "svc" and tags[TAG_CONTROLLER_ID] == "ctrl-test"


def test_terminate_deletes_the_instances_security_group(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    request = cloud.request()
    inst = cloud.provisioner.launch(request)
    assert groups_of(fake, request.launch_token)
    cloud.provisioner.terminate(inst.instance_id, inst.location)
    assert groups_of(fake, request.launch_token) == []


def test_refused_launch_deletes_its_security_group(cloud: CloudUnderTest, fake: MotoEC2) -> None:
    cloud.fake.refuse_capacity(EAST)
    request = cloud.request(EAST)
    with pytest.raises(CapacityUnavailable):
        cloud.provisioner.launch(request)
    assert groups_of(fake, request.launch_token) == []


def test_capacity_refusal_is_answered_at_once_without_sdk_retries(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    cloud.fake.refuse_capacity(EAST)
    with pytest.raises(CapacityUnavailable):
        cloud.provisioner.launch(cloud.request(EAST))
    assert len(run_instances_calls(fake)) == 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("InsufficientInstanceCapacity", CapacityUnavailable),
        ("InsufficientReservedInstanceCapacity", CapacityUnavailable),
        ("InsufficientReservedInstancesCapacity", CapacityUnavailable),
        ("Unsupported", CapacityUnavailable),
        ("InstanceLimitExceeded", QuotaExceeded),
        ("VcpuLimitExceeded", QuotaExceeded),
        ("MaxSpotInstanceCountExceeded", QuotaExceeded),
        ("SpotMaxPriceTooLow", SpotUnavailable),
        ("AuthFailure", CredentialsError),
        ("UnauthorizedOperation", CredentialsError),
        ("OptInRequired", CredentialsError),
        ("InvalidParameterValue", InvalidRequest),
        ("InvalidAMIID.NotFound", InvalidRequest),
        ("RequestLimitExceeded", TransientError),
        ("InternalError", TransientError),
    ],
)
def test_ec2_error_code_maps_to_its_error_class(
    cloud: CloudUnderTest, fake: MotoEC2, code: str, expected: type[ProvisionError]
) -> None:
    fake.refuse(EAST, code)
    with pytest.raises(ProvisionError) as err:
        cloud.provisioner.launch(cloud.request(EAST))
    assert type(err.value) is expected
    assert err.value.code == code and err.value.location == EAST.key


def test_quota_error_tells_the_operator_where_to_raise_it(cloud: CloudUnderTest) -> None:
    cloud.fake.exceed_quota(EAST)
    with pytest.raises(QuotaExceeded, match="Service Quotas"):
        cloud.provisioner.launch(cloud.request(EAST))


def test_preempted_instance_is_still_listed_as_preempted(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request(spot=True))
    cloud.fake.preempt(inst.instance_id)
    listed = {i.instance_id: i for i in cloud.provisioner.list_owned("svc")}
    assert listed[inst.instance_id].state == InstanceState.PREEMPTED
    assert "SpotInstanceTermination" in listed[inst.instance_id].detail


def test_list_owned_searches_every_region(cloud: CloudUnderTest) -> None:
    east = cloud.provisioner.launch(cloud.request(EAST, service="spread"))
    west = cloud.provisioner.launch(cloud.request(WEST, service="spread"))
    owned = {i.instance_id: i.location for i in cloud.provisioner.list_owned("spread")}
    assert owned == {east.instance_id: EAST, west.instance_id: WEST}


def test_list_owned_ignores_instances_without_our_tags(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    ec2 = fake.client(EAST.region)
    ssm = fake.client(EAST.region, "ssm")
    image = ssm.get_parameter(Name=MOTO_IMAGE_PARAMETER)["Parameter"]["Value"]
    foreign = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    assert foreign["InstanceId"] not in {i.instance_id for i in cloud.provisioner.list_owned()}


def test_get_of_an_unknown_instance_is_none(cloud: CloudUnderTest) -> None:
    assert cloud.provisioner.get("i-0123456789abcdef0", EAST) is None


def test_terminate_of_an_id_ec2_does_not_know_is_not_confirmed(cloud: CloudUnderTest) -> None:
    """EC2 may not show a just-launched instance yet: the replica manager decides."""
    assert cloud.provisioner.terminate("i-0123456789abcdef0", EAST) is False


def test_default_image_comes_from_the_ssm_public_parameter(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    cloud.provisioner.launch(cloud.request())
    ssm = fake.client(EAST.region, "ssm")
    expected = ssm.get_parameter(Name=MOTO_IMAGE_PARAMETER)["Parameter"]["Value"]
    assert run_instances_calls(fake)[-1]["ImageId"] == expected


def test_missing_image_parameter_asks_for_an_image_id(
    fake: MotoEC2, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_AWS_IMAGE_PARAMETER", "/aws/service/no/such/image")
    cloud = CloudUnderTest(AWSProvisioner(), fake, EAST, WEST, "g5.xlarge")
    with pytest.raises(InvalidRequest, match="image_id"):
        cloud.provisioner.launch(cloud.request())


def test_disk_size_sets_the_root_volume_of_the_image(cloud: CloudUnderTest, fake: MotoEC2) -> None:
    base = cloud.request()
    request = LaunchRequest(**{**base.__dict__, "resources": ResourceRequest(disk_size=256)})
    cloud.provisioner.launch(request)
    sent = run_instances_calls(fake)[-1]
    assert sent["BlockDeviceMapping.1.DeviceName"] == "/dev/xvda"
    assert sent["BlockDeviceMapping.1.Ebs.VolumeSize"] == "256"
    assert sent["BlockDeviceMapping.1.Ebs.DeleteOnTermination"] == "true"


def test_setup_envs_and_secrets_of_any_size_stay_out_of_user_data(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    """They reach the replica agent after boot, so EC2's 16 KiB limit does not apply."""
    base = cloud.request()
    big = {"setup": "echo x\n" * 3000, "secrets": {"TOKEN": "s" * 20_000}}
    cloud.provisioner.launch(LaunchRequest(**{**base.__dict__, **big}))
    user_data = base64.b64decode(run_instances_calls(fake)[-1]["UserData"]).decode()
    assert "echo x" not in user_data and "s" * 100 not in user_data


def test_check_names_the_identity_when_credentials_work(cloud: CloudUnderTest) -> None:
    result = cloud.provisioner.check()
    assert result.usable and "123456789012" in result.reason


def test_check_without_credentials_says_how_to_configure_them(
    fake: MotoEC2, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = AWSProvisioner().check()
    assert not result.usable and result.reason == "no AWS credentials found"
    assert "aws configure" in result.hint


def test_check_with_rejected_credentials_is_not_usable(cloud: CloudUnderTest) -> None:
    cloud.fake.reject_credentials()
    result = cloud.provisioner.check()
    assert not result.usable and "refused the credentials" in result.reason


def test_offers_come_from_the_aws_rows_of_the_catalog(cloud: CloudUnderTest) -> None:
    offers = cloud.provisioner.offers(
        ResourceRequest(accelerators=(Accelerator("A10G", 1),), use_spot=True)
    )
    assert offers and {o.location.cloud for o in offers} == {"aws"}
    assert {o.instance_type for o in offers} == {"g5.xlarge"}
    assert offers == sorted(offers, key=lambda o: o.spot_price or 0)


def test_launch_outside_aws_is_an_invalid_request(cloud: CloudUnderTest) -> None:
    base = cloud.request()
    gcp = Offer(Location("gcp", "us-central1", "us-central1-a"), 1.0, 0.3, "g2-standard-4")
    with pytest.raises(InvalidRequest):
        cloud.provisioner.launch(LaunchRequest(**{**base.__dict__, "offer": gcp}))


@pytest.fixture
def moto_server_process(moto_ec2: MotoEC2) -> Iterator[str]:
    """`python -m moto.server` as its own process, as the README tells operators to run it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("moto.server did not start within 30 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_runs_against_a_moto_server_process_given_only_aws_endpoint_url(
    moto_server_process: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server_process)
    provisioner = AWSProvisioner()
    request = LaunchRequest(
        service="standalone",
        replica_id=1,
        launch_token="standalone-token",
        controller_id="ctrl-test",
        offer=Offer(EAST, on_demand_price=1.006, spot_price=0.4, instance_type="g5.xlarge"),
        spot=True,
        port=8080,
        run="python3 -m http.server 8080",
    )
    inst = provisioner.launch(request)
    assert [i.instance_id for i in provisioner.list_owned("standalone")] == [inst.instance_id]
    provisioner.terminate(inst.instance_id, inst.location)
    assert provisioner.list_owned("standalone") == []


# ---- eventual consistency: terminate and get go by id ----------------------------------


def test_terminate_sends_terminate_instances_while_describe_says_not_found(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    assert fake.proxy is not None
    fake.proxy.refuse("InvalidInstanceID.NotFound", action="DescribeInstances", times=10)
    cloud.provisioner.terminate(inst.instance_id, inst.location)
    sent = fake.proxy.received("TerminateInstances")
    assert [c["InstanceId.1"] for c in sent] == [inst.instance_id]
    assert fake.describe(inst.instance_id)["State"]["Name"] == "terminated"


def test_terminate_is_not_confirmed_while_ec2_does_not_know_the_id(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    assert fake.proxy is not None
    for action in ("CreateTags", "TerminateInstances"):
        fake.proxy.refuse("InvalidInstanceID.NotFound", action=action, times=1)
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is False
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is True
    assert fake.describe(inst.instance_id)["State"]["Name"] == "terminated"


def test_get_of_an_instance_ec2_does_not_show_yet_is_none(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    assert fake.proxy is not None
    fake.proxy.refuse("InvalidInstanceID.NotFound", action="DescribeInstances", times=1)
    assert cloud.provisioner.get(inst.instance_id, inst.location) is None
    assert cloud.provisioner.get(inst.instance_id, inst.location) is not None


# ---- how an instance ended ---------------------------------------------------------------


def test_instance_terminated_outside_spotserve_is_lost(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    fake.terminate_outside_spotserve(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.LOST
    assert "UserInitiatedShutdown" in got.detail


def test_lost_instance_is_listed_until_spotserve_terminates_it(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    inst = cloud.provisioner.launch(cloud.request(service="lost"))
    fake.terminate_outside_spotserve(inst.instance_id)
    listed = {i.instance_id: i.state for i in cloud.provisioner.list_owned("lost")}
    assert listed == {inst.instance_id: InstanceState.LOST}
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is True
    assert cloud.provisioner.list_owned("lost") == []


def test_instance_that_shut_itself_down_is_terminated(cloud: CloudUnderTest, fake: MotoEC2) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    fake.shut_down_from_inside(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.TERMINATED
    assert "shut itself down" in got.detail


def test_instance_terminated_by_spotserve_is_terminated(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    assert cloud.provisioner.terminate(inst.instance_id, inst.location) is True
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.TERMINATED


def test_instance_ec2_ended_for_capacity_during_launch_is_refused(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    fake.end_for_capacity_at_launch(inst.instance_id)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.state == InstanceState.REFUSED
    assert isinstance(got.error, CapacityUnavailable) and got.error.try_elsewhere
    assert got.error.location == EAST.key


# ---- API call volume ---------------------------------------------------------------------


def ec2_calls(fake: MotoEC2, action: str) -> int:
    assert fake.proxy is not None
    return len([c for c in fake.proxy.received_calls(action) if c.service == "ec2"])


def test_per_tick_listing_searches_only_the_given_region_and_sweeps_nothing(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    cloud.provisioner.launch(cloud.request(service="svc"))
    fake.clear()
    cloud.provisioner.list_owned("svc", regions=[EAST.region])
    assert ec2_calls(fake, "DescribeInstances") == 1
    assert ec2_calls(fake, "DescribeSecurityGroups") == 0


def test_full_scan_searches_every_region_and_sweeps_security_groups(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    cloud.provisioner.launch(cloud.request(service="svc"))
    fake.clear()
    cloud.provisioner.list_owned()
    assert ec2_calls(fake, "DescribeInstances") >= 2, "one listing per searched region"
    assert ec2_calls(fake, "DescribeSecurityGroups") == 2, "one sweep per searched region"


def test_clients_back_off_adaptively_except_run_instances(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    """botocore names its retry mode in the User-Agent it sends (`cfg/retry-mode#...`)."""
    cloud.provisioner.launch(cloud.request())
    assert fake.proxy is not None
    for call in fake.proxy.received_calls():
        if call.action == "RunInstances":
            assert "retry-mode#adaptive" not in call.user_agent
        elif call.service in ("ec2", "ssm"):
            assert "cfg/retry-mode#adaptive" in call.user_agent, call.action


def test_throttled_describe_is_retried_after_backing_off(
    cloud: CloudUnderTest, fake: MotoEC2
) -> None:
    inst = cloud.provisioner.launch(cloud.request())
    assert fake.proxy is not None
    fake.proxy.refuse("RequestLimitExceeded", action="DescribeInstances", times=1)
    got = cloud.provisioner.get(inst.instance_id, inst.location)
    assert got is not None and got.instance_id == inst.instance_id
    assert ec2_calls(fake, "DescribeInstances") == 2


# ---- default image by instance family ----------------------------------------------------


@pytest.mark.parametrize(
    ("instance_type", "parameter"),
    [
        ("p3.2xlarge", PROPRIETARY_DRIVER_GPU_PARAMETER),
        ("g5.xlarge", OSS_DRIVER_GPU_PARAMETER),
        ("m5.large", CPU_PARAMETER),
    ],
)
def test_default_image_is_chosen_by_instance_family(
    fake: MotoEC2,
    session: boto3.session.Session,
    monkeypatch: pytest.MonkeyPatch,
    instance_type: str,
    parameter: str,
) -> None:
    """V100 (p3) needs the proprietary-driver DLAMI: the OSS-driver one cannot drive it."""
    monkeypatch.delenv("SERVE_AWS_IMAGE_PARAMETER")
    assert fake.proxy is not None
    ssm = fake.client(EAST.region, "ssm")
    image = ssm.get_parameter(Name=MOTO_IMAGE_PARAMETER)["Parameter"]["Value"]
    fake.proxy.answer_parameter(parameter, image)
    cloud = CloudUnderTest(AWSProvisioner(session=session), fake, EAST, WEST, instance_type)
    cloud.provisioner.launch(cloud.request())
    asked = [c["Name"] for c in fake.proxy.received("GetParameter")]
    assert asked == [parameter]
    assert run_instances_calls(fake)[-1]["ImageId"] == image


# ---- ingress -------------------------------------------------------------------------------


def test_service_port_is_opened_to_serve_ingress_cidr(
    fake: MotoEC2, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_INGRESS_CIDR", "198.51.100.0/24")
    cloud = CloudUnderTest(AWSProvisioner(session=session), fake, EAST, WEST, "g5.xlarge")
    request = cloud.request()
    cloud.provisioner.launch(request)
    (group,) = groups_of(fake, request.launch_token)
    (rule,) = [r for r in group["IpPermissions"] if r["FromPort"] == 8080]
    assert [r["CidrIp"] for r in rule["IpRanges"]] == ["198.51.100.0/24"]


def test_agent_port_is_opened_only_to_the_controller_cidr(
    fake: MotoEC2, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVE_INGRESS_CIDR", "0.0.0.0/0")
    monkeypatch.setenv("SERVE_CONTROLLER_CIDR", "203.0.113.7/32")
    monkeypatch.setenv("SERVE_AGENT_PORT", "47003")
    cloud = CloudUnderTest(AWSProvisioner(session=session), fake, EAST, WEST, "g5.xlarge")
    request = cloud.request()
    cloud.provisioner.launch(request)
    (group,) = groups_of(fake, request.launch_token)
    (rule,) = [r for r in group["IpPermissions"] if r["FromPort"] == 47003]
    assert (rule["IpProtocol"], rule["ToPort"]) == ("tcp", 47003)
    assert rule["IpRanges"] == [
        {"CidrIp": "203.0.113.7/32", "Description": "spotserve replica agent"}
    ]


# ---- bundles -------------------------------------------------------------------------------


def packed_bundle(root: Path, text: str = "print('hello')\n") -> Bundle:
    """A real bundle, packed as `serve up` packs a workdir."""
    workdir = root / "app"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "app.py").write_text(text)
    packed = pack(workdir, {}, root / "bundles")
    assert packed is not None
    return Bundle(packed.digest, packed.path, packed.size)


def boot_config_of(fake: MotoEC2, instance_id: str) -> dict[str, Any]:
    """The agent's boot config, read back from the instance's user data as EC2 keeps it."""
    answer = fake.client(EAST.region).describe_instance_attribute(
        InstanceId=instance_id, Attribute="userData"
    )
    script = base64.b64decode(answer["UserData"]["Value"]).decode()
    config = script.split("<<'SPOTSERVE_CONFIG'\n", 1)[1].split("\nSPOTSERVE_CONFIG", 1)[0]
    found: dict[str, Any] = json.loads(config)
    return found


def bundle_keys(fake: MotoEC2, store: S3BundleStore, service: str) -> list[str]:
    s3 = fake.client(EAST.region, "s3")
    listed = s3.list_objects_v2(Bucket=store.bucket, Prefix=f"bundles/{service}/")
    return [o["Key"] for o in listed.get("Contents", [])]


@pytest.fixture
def bundling(fake: MotoEC2, session: boto3.session.Session) -> CloudUnderTest:
    """An adapter with an installation of its own, so its bucket is the test's alone."""
    provisioner = AWSProvisioner(installation=f"ctrl-{uuid.uuid4().hex[:8]}", session=session)
    return CloudUnderTest(provisioner, fake, EAST, WEST, "g5.xlarge")


def with_bundle(request: LaunchRequest, bundle: Bundle) -> LaunchRequest:
    return dataclasses.replace(request, bundle=bundle, agent_token=uuid.uuid4().hex)


def test_user_data_url_serves_exactly_the_bundle(
    bundling: CloudUnderTest, fake: MotoEC2, tmp_path: Path
) -> None:
    bundle = packed_bundle(tmp_path)
    inst = bundling.provisioner.launch(with_bundle(bundling.request(), bundle))
    config = boot_config_of(fake, inst.instance_id)
    assert config["bundle_digest"] == bundle.digest
    with urllib.request.urlopen(config["bundle_url"], timeout=10) as reply:
        fetched = reply.read()
    assert hashlib.sha256(fetched).hexdigest() == bundle.digest


def test_user_data_with_a_bundle_url_stays_under_ec2s_limit(
    bundling: CloudUnderTest, fake: MotoEC2, tmp_path: Path
) -> None:
    request = with_bundle(bundling.request(), packed_bundle(tmp_path))
    bundling.provisioner.launch(request)
    sent = base64.b64decode(run_instances_calls(fake)[-1]["UserData"])
    assert b"X-Amz-Signature=" in sent and len(sent) < USER_DATA_LIMIT


def test_release_empties_the_services_prefix_only(
    bundling: CloudUnderTest, fake: MotoEC2, tmp_path: Path
) -> None:
    provisioner = bundling.provisioner
    assert isinstance(provisioner, AWSProvisioner)
    for service in ("web", "web2"):
        request = with_bundle(bundling.request(service=service), packed_bundle(tmp_path))
        provisioner.launch(request)
    store = provisioner.bundle_store()
    assert bundle_keys(fake, store, "web") and bundle_keys(fake, store, "web2")
    assert provisioner.release("web") is True
    assert bundle_keys(fake, store, "web") == []
    assert bundle_keys(fake, store, "web2") != []


def test_release_without_a_bucket_is_done(bundling: CloudUnderTest) -> None:
    assert bundling.provisioner.release("never-launched") is True


def test_a_store_that_cannot_be_reached_fails_the_launch_and_creates_nothing(
    fake: MotoEC2,
    session: boto3.session.Session,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", nobody)
    cloud = CloudUnderTest(AWSProvisioner(session=session), fake, EAST, WEST, "g5.xlarge")
    request = with_bundle(cloud.request(), packed_bundle(tmp_path))
    with pytest.raises(TransientError, match="cannot stage the bundle in S3") as refused:
        cloud.provisioner.launch(request)
    assert refused.value.location == EAST.key
    assert run_instances_calls(fake) == []
    assert groups_of(fake, request.launch_token) == []


def test_s3_file_mounts_are_signed_for_the_replica(bundling: CloudUnderTest, fake: MotoEC2) -> None:
    provisioner = bundling.provisioner
    assert isinstance(provisioner, AWSProvisioner)
    s3 = fake.client(EAST.region, "s3")
    bucket = f"weights-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="model/a.bin", Body=b"weights")
    (signed,) = provisioner.sign_source(f"s3://{bucket}/model/", 600) or []
    assert signed.path == "a.bin"
    with urllib.request.urlopen(signed.url, timeout=10) as reply:
        assert reply.read() == b"weights"
