"""The GCP fake's boot mode, driven through the real adapter: an instance it creates runs its
startup script (the replica agent) as a local process at its own loopback address, reads a
metadata server that refuses what GCE's refuses, and ends when the instance does."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.bundle import pack
from policies.types import Location
from provisioners.base import Bundle, Instance, InstanceState
from provisioners.gcp import GCPProvisioner
from replica_manager.agent_client import AgentClient, AgentPhase, AgentUnreachable
from tests.fakes.gcp_boot import PREEMPTED_PATH
from tests.fakes.gcp_compute import FakeGCPCompute
from tests.provisioners.contract_suite import CloudUnderTest, terminate_fully
from tests.provisioners.object_store_kits import GCSKit, new_installation_id
from tests.support.processes import wait_until

ZONE_A = Location("gcp", "us-central1", "us-central1-a")
ZONE_B = Location("gcp", "us-east1", "us-east1-b")
BOOT_SECONDS = 60


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGCPCompute]:
    server = FakeGCPCompute(project="test-project", boot=True, boot_root=tmp_path / "vms")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cloud(fake: FakeGCPCompute, gcs_kit: GCSKit, monkeypatch: pytest.MonkeyPatch) -> CloudUnderTest:
    monkeypatch.setenv("SERVE_GCP_API_ENDPOINT", fake.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_kit.endpoint)
    monkeypatch.setenv("SERVE_LEAK_CANARY", "from-the-test")
    gcp = GCPProvisioner(installation=new_installation_id())
    return CloudUnderTest(gcp, fake, ZONE_A, ZONE_B, "n2-standard-2")


def workdir_bundle(tmp_path: Path) -> Bundle:
    src = tmp_path / "src"
    src.mkdir(parents=True)
    (src / "hello.txt").write_text("from the operator's laptop\n")
    packed = pack(src, {}, tmp_path / "bundles")
    assert packed is not None
    return Bundle(packed.digest, packed.path, packed.size)


def running(cloud: CloudUnderTest, inst: Instance) -> Instance:
    def seen() -> Instance | None:
        got = cloud.provisioner.get(inst.instance_id, inst.location)
        return got if got is not None and got.state == InstanceState.RUNNING else None

    found: Instance = wait_until(seen, f"{inst.instance_id} RUNNING", BOOT_SECONDS)
    return found


def agent_of(inst: Instance, token: str) -> AgentClient:
    """A client that has checked the agent's proof, once its port is up."""
    assert inst.agent_url is not None
    client = AgentClient(inst.agent_url, token, None, timeout=5)

    def hello() -> bool:
        try:
            client.hello()
        except AgentUnreachable:
            return False
        return True

    wait_until(hello, f"the agent at {inst.agent_url}", BOOT_SECONDS, every=0.2)
    return client


def boot(
    cloud: CloudUnderTest, tmp_path: Path, *, spot: bool = True
) -> tuple[Instance, AgentClient]:
    request = dataclasses.replace(
        cloud.request(spot=spot), bundle=workdir_bundle(tmp_path), agent_token=uuid.uuid4().hex
    )
    inst = running(cloud, cloud.provisioner.launch(request))
    return inst, agent_of(inst, request.agent_token)


def job(run: str, replica_id: int = 1) -> dict[str, object]:
    return {
        "setup": None,
        "run": run,
        "envs": {},
        "secrets": {},
        "bucket_mounts": [],
        "service": "svc",
        "replica_id": replica_id,
        "port": 8080,
    }


def test_an_instance_runs_its_startup_script_at_its_own_loopback_address(
    cloud: CloudUnderTest, fake: FakeGCPCompute, tmp_path: Path
) -> None:
    inst, agent = boot(cloud, tmp_path)
    assert inst.address is not None and inst.address.startswith("127.77.")
    assert fake.booted(inst.instance_id).address == inst.address
    agent.send_job(job("env > run.env"))
    wait_until(lambda: agent.status().phase == AgentPhase.EXITED, "the job to run", 30)
    vm = fake.booted(inst.instance_id)
    workdir = vm.directory / "home" / "serve_workdir"
    assert (workdir / "hello.txt").read_text() == "from the operator's laptop\n"
    env = dict(
        line.split("=", 1) for line in (workdir / "run.env").read_text().splitlines() if "=" in line
    )
    assert env["SERVE_REPLICA_HOST"] == inst.address
    assert env["HOME"] == str(vm.directory / "home")
    assert env["SERVE_METADATA_URL"].startswith(fake.booter.metadata_url if fake.booter else "")
    assert "SERVE_LEAK_CANARY" not in env and "SERVE_GCP_API_ENDPOINT" not in env


def test_two_instances_share_no_address_and_no_folder(
    cloud: CloudUnderTest, fake: FakeGCPCompute, tmp_path: Path
) -> None:
    first, _ = boot(cloud, tmp_path / "a")
    second, _ = boot(cloud, tmp_path / "b")
    assert first.address != second.address
    assert fake.booted(first.instance_id).directory != fake.booted(second.instance_id).directory


def metadata_get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metadata_answers_preempted_only_with_the_metadata_flavor_header(
    cloud: CloudUnderTest, fake: FakeGCPCompute, tmp_path: Path
) -> None:
    inst, agent = boot(cloud, tmp_path)
    assert fake.booter is not None
    url = f"{fake.booter.metadata_url}/instances/{inst.instance_id}{PREEMPTED_PATH}"
    assert metadata_get(url, {})[0] == 403
    flavor = {"Metadata-Flavor": "Google"}
    assert metadata_get(url, {**flavor, "X-Forwarded-For": "10.0.0.1"})[0] == 403
    assert metadata_get(url, flavor) == (200, "FALSE")
    assert agent.notice() is None
    fake.preempt(inst.instance_id)
    assert metadata_get(url, flavor) == (200, "TRUE")
    notice = wait_until(agent.notice, "the agent to see the preemption", 20)
    assert notice["kind"] == "preemption" and notice["cloud"] == "gcp"


def group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_deleting_an_instance_ends_its_process_group(
    cloud: CloudUnderTest, fake: FakeGCPCompute, tmp_path: Path
) -> None:
    inst, agent = boot(cloud, tmp_path)
    agent.send_job(job("sleep 300"))
    wait_until(lambda: agent.status().phase == AgentPhase.RUNNING, "the job to run", 30)
    pid = fake.booted(inst.instance_id).process.pid
    terminate_fully(cloud, inst)
    assert wait_until(lambda: group_gone(pid), "the instance's processes to end", 10)


def test_a_process_that_dies_is_a_vm_whose_os_halted(
    cloud: CloudUnderTest, fake: FakeGCPCompute, tmp_path: Path
) -> None:
    inst, _ = boot(cloud, tmp_path, spot=False)
    os.killpg(fake.booted(inst.instance_id).process.pid, signal.SIGKILL)

    def state() -> InstanceState | None:
        got = cloud.provisioner.get(inst.instance_id, inst.location)
        return got.state if got is not None else None

    wait_until(lambda: state() == InstanceState.TERMINATED, "the instance TERMINATED", 10)


def test_stopping_the_fake_ends_every_instance(
    cloud: CloudUnderTest, fake: FakeGCPCompute, tmp_path: Path
) -> None:
    inst, _ = boot(cloud, tmp_path)
    pid = fake.booted(inst.instance_id).process.pid
    fake.stop()
    deadline = time.monotonic() + 10
    while not group_gone(pid):
        assert time.monotonic() < deadline, "instance processes outlived the fake"
        time.sleep(0.1)
