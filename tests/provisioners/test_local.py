"""The local provisioner against the shared contract, plus what only it has: real
processes, the replica environment, and the simulated spot market."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from policies.types import Location
from provisioners.base import Instance, InstanceState, LaunchRequest, ResourceRequest
from provisioners.errors import CapacityUnavailable
from provisioners.local import LocalProvisioner
from provisioners.local_market import ZoneMarket
from tests.provisioners.contract_suite import *  # noqa: F403
from tests.provisioners.contract_suite import CloudUnderTest
from tests.support.processes import wait_until

A = Location("local", "local", "local-a")
B = Location("local", "local", "local-b")


@dataclass
class LocalMarketControl:
    prov: LocalProvisioner

    def refuse_capacity(self, location: Location) -> None:
        self.prov.market.set_zone(location.zone, spot_capacity=0)

    def exceed_quota(self, location: Location) -> None:
        pytest.skip("the local provisioner has no quotas")

    def reject_credentials(self) -> None:
        pytest.skip("the local provisioner needs no credentials")

    def preempt(self, instance_id: str) -> None:
        self.prov.preempt(instance_id, "test preemption")

    def tags_of(self, instance_id: str) -> dict[str, str]:
        return self.prov.tags_of(instance_id)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalProvisioner]:
    prov = LocalProvisioner(root=tmp_path / "local", log_root=tmp_path / "logs")
    yield prov
    for inst in prov.list_owned():
        prov.terminate(inst.instance_id, inst.location)


@pytest.fixture
def cloud(local: LocalProvisioner) -> CloudUnderTest:
    return CloudUnderTest(local, LocalMarketControl(local), A, B, "local-process")


def _server(cloud: CloudUnderTest, **kw: object) -> LaunchRequest:
    base = cloud.request(**kw)  # type: ignore[arg-type]
    app = (Path(__file__).parents[2] / "examples" / "hello").resolve()
    return LaunchRequest(**{**base.__dict__, "run": "python3 app.py", "workdir": str(app)})


def test_replica_gets_the_vm_environment_and_answers_on_its_port(cloud: CloudUnderTest) -> None:
    inst = cloud.provisioner.launch(_server(cloud, replica_id=4))
    assert inst.url is not None
    health = wait_until(lambda: _get(f"{inst.url}/health"), "the replica to answer", 20)
    assert health["replica"] == "4"
    environ = _environ_of_group(inst.instance_id, cloud.provisioner)  # type: ignore[arg-type]
    assert environ["SERVE_SERVICE_NAME"] == "svc"
    assert environ["SERVE_REPLICA_PORT"] == str(inst.port)
    assert environ["MODEL"] == "tiny"


def test_setup_runs_before_run_and_logs_go_to_the_replica_log(
    cloud: CloudUnderTest, tmp_path: Path
) -> None:
    req = cloud.request(replica_id=9)
    req = LaunchRequest(
        **{
            **req.__dict__,
            "setup": "echo SETUP-DONE > marker",
            "run": "cat marker; echo RUN-STARTED; sleep 30",
        }
    )
    cloud.provisioner.launch(req)
    log = tmp_path / "logs" / "svc" / "replica-9.log"
    wait_until(lambda: log.exists() and "RUN-STARTED" in log.read_text(), "the run step", 10)
    text = log.read_text()
    assert text.index("SETUP-DONE") < text.index("RUN-STARTED")


def test_exited_process_is_reported_terminated_with_its_code(cloud: CloudUnderTest) -> None:
    req = cloud.request()
    inst = cloud.provisioner.launch(LaunchRequest(**{**req.__dict__, "run": "exit 3"}))
    got = wait_until(
        lambda: (
            (g := cloud.provisioner.get(inst.instance_id, inst.location))
            and g.state == InstanceState.TERMINATED
            and g
        ),
        "the instance to be seen dead",
        10,
    )
    assert "code 3" in got.detail


def test_lowering_spot_capacity_preempts_newest_spot_replica_first(
    local: LocalProvisioner, cloud: CloudUnderTest
) -> None:
    old = local.launch(cloud.request(A, replica_id=1))
    new = local.launch(cloud.request(A, replica_id=2))
    on_demand = local.launch(cloud.request(A, spot=False, replica_id=3))
    local.market.set_zone("local-a", spot_capacity=1)
    states = {i.instance_id: i.state for i in local.list_owned("svc")}
    assert states[new.instance_id] == InstanceState.PREEMPTED
    assert states[old.instance_id] == InstanceState.RUNNING
    assert states[on_demand.instance_id] == InstanceState.RUNNING


def test_a_zone_with_notice_warns_its_spot_replica_then_takes_it_at_the_deadline(
    local: LocalProvisioner, cloud: CloudUnderTest
) -> None:
    old = local.launch(_server(cloud, location=A, replica_id=1))
    new = local.launch(_server(cloud, location=A, replica_id=2))
    local.market.set_zone("local-a", notice_seconds=3)
    started = time.time()
    local.market.set_zone("local-a", spot_capacity=1)
    local.enforce_market()

    warned = {i.instance_id: i for i in local.list_owned("svc")}[new.instance_id]
    assert warned.state == InstanceState.RUNNING and warned.notice is not None
    assert started + 3 <= warned.notice.deadline <= time.time() + 3
    assert "capacity in local-a dropped to 1" in warned.notice.detail
    assert {i.instance_id: i for i in local.list_owned("svc")}[old.instance_id].notice is None
    wait_until(lambda: _answers(new), "the warned replica to answer", 15)
    with pytest.raises(CapacityUnavailable):  # the one unwarned replica holds the capacity
        local.launch(cloud.request(A, replica_id=3))

    taken = wait_until(
        lambda: (i := local.get(new.instance_id, A)) and i.state == InstanceState.PREEMPTED and i,
        "the warned replica to be taken at its deadline",
        15,
    )
    assert time.time() >= started + 3 and taken.notice is None
    assert local.get(old.instance_id, A).state == InstanceState.RUNNING  # type: ignore[union-attr]


def _answers(inst: Instance) -> bool:
    try:
        return httpx.get(f"{inst.url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_on_demand_is_always_available(local: LocalProvisioner, cloud: CloudUnderTest) -> None:
    local.market.set_zone("local-a", spot_capacity=0)
    inst = local.launch(cloud.request(A, spot=False))
    assert inst.state == InstanceState.RUNNING


def test_offers_come_from_the_market_prices(local: LocalProvisioner) -> None:
    local.market.set_zone("local-b", spot_price=0.5, on_demand_price=2.0)
    offers = local.offers(ResourceRequest(use_spot=True))
    assert offers[0].location == B and offers[0].spot_price == 0.5
    assert {o.location.zone for o in offers} == {"local-a", "local-b", "local-c"}


def test_market_zones_are_configurable(local: LocalProvisioner) -> None:
    local.market.write(local.market.read().with_zone(ZoneMarket("local-d", 2, 0.7, 2.1)))
    assert "local-d" in {o.location.zone for o in local.offers(ResourceRequest())}


def test_a_new_provisioner_object_finds_running_instances(
    local: LocalProvisioner, cloud: CloudUnderTest, tmp_path: Path
) -> None:
    inst = local.launch(cloud.request())
    restarted = LocalProvisioner(root=local.root, log_root=local.log_root)
    found = restarted.get(inst.instance_id, inst.location)
    assert found is not None and found.state == InstanceState.RUNNING


def _get(url: str) -> dict | None:
    try:
        resp = httpx.get(url, timeout=1)
        return resp.json() if resp.status_code == 200 else None
    except httpx.HTTPError:
        return None


def _environ_of_group(instance_id: str, prov: LocalProvisioner) -> dict[str, str]:
    import json

    record = json.loads((prov.root / "instances" / f"{instance_id}.json").read_text())
    pid = record["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item]
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}
