"""`serve up examples/hello/azure.yaml` (`cloud: azure`) on VMs that really boot.

The controller is a real process configured as the README tells an operator (SERVE_CLOUDS=azure,
SERVE_AZURE_ARM_ENDPOINT, AZURE_STORAGE_CONNECTION_STRING). It calls the ARM fake in boot mode
(tests/fakes/azure_arm.py), whose VMs run their custom data: the boot script starts the replica
agent, which fetches the bundle from Azurite through its SAS URL, gets its job from the
controller over TLS and runs the app on the VM's own loopback address. Then: answers through
the endpoint, the app's output in `serve logs --replica 1`, a VM whose processes die is
replaced, and `serve down` leaves no VM, NIC, public IP, NSG or blob of the service.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.blob import BlobServiceClient

from provisioners.base import TAG_CONTROLLER_ID, TAG_REPLICA_ID, TAG_SERVICE
from provisioners.object_store import bucket_name
from tests.fakes.azure_arm import IP, NIC, NSG, VM, FakeAzureARM
from tests.support import azurite as azurite_npm
from tests.support.processes import REPO, ControllerProcess, Env, free_port, wait_until

pytestmark = pytest.mark.slow

NAME = "hello-azure"
SECRET = "hello-secret-4f1c9a"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
NIC_HELD_SECONDS = 2.0
"""Azure holds a deleted VM's NIC for 180 s (`NicReservedForAnotherVm`); 2 here, so that
`serve down` finishes quickly."""
BOOT_TO_READY_SECONDS = 180
"""Generous: the machine is shared; on a quiet one a replica is READY in well under 30 s."""


def service_yaml(port: int) -> str:
    """examples/hello/azure.yaml as an operator runs it, on a port of its own."""
    text = (REPO / "examples" / "hello" / "azure.yaml").read_text()
    assert "ports: 8080\n" in text
    return text.replace("ports: 8080\n", f"ports: {port}\n")


@pytest.fixture(scope="module")
def azurite() -> Iterator[azurite_npm.Azurite]:
    why = azurite_npm.install()
    if why is not None:
        message = f"Azurite is not installed ({why}); {azurite_npm.INSTALL_HINT}"
        if os.environ.get("SERVE_TEST_REQUIRE_EMULATORS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with azurite_npm.azurite() as running:
        yield running


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[FakeAzureARM]:
    fake = FakeAzureARM(
        boot=True, boot_root=tmp_path / "vms", nic_reservation_seconds=NIC_HELD_SECONDS
    )
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def azure_controller(
    sqlite_env: Env, arm: FakeAzureARM, azurite: azurite_npm.Azurite
) -> Iterator[ControllerProcess]:
    sqlite_env.extra.update(
        {
            "SERVE_CLOUDS": "azure",
            "SERVE_AZURE_ARM_ENDPOINT": arm.url,
            "AZURE_SUBSCRIPTION_ID": arm.subscription,
            "SERVE_AZURE_SSH_PUBLIC_KEY": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ e2e",
            "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "SERVE_AGENT_PORT": str(free_port()),
        }
    )
    proc = ControllerProcess(sqlite_env).start()
    yield proc
    proc.kill()


def test_hello_on_azure_vms_that_boot_answers_logs_heals_and_leaves_nothing(
    azure_controller: ControllerProcess,
    arm: FakeAzureARM,
    azurite: azurite_npm.Azurite,
    tmp_path: Path,
) -> None:
    env = azure_controller.env
    spec = tmp_path / "service.yaml"
    spec.write_text(service_yaml(free_port()))
    started = time.monotonic()
    up = env.serve("up", str(spec), "--detach", "--secret", f"HELLO_TOKEN={SECRET}")
    assert up.returncode == 0, up.stdout + up.stderr

    first = wait_until(
        lambda: len(ready(env)) == 2 and ready(env),
        "2 replicas READY on booted VMs",
        BOOT_TO_READY_SECONDS,
    )
    up_to_ready = time.monotonic() - started
    assert {r["cloud"] for r in first} == {"azure"}
    vms = [vm_of(arm, r["id"]) for r in first]
    assert all(vm.address.startswith("127.78.") for vm in vms)
    assert len({vm.address for vm in vms}) == 2, "each VM has its own address"
    installation = arm.tags_of(vms[0].name)[TAG_CONTROLLER_ID]
    assert len(blobs_of(azurite, installation)) == 1, "one bundle, in Azurite"
    endpoint = status_json(env)["endpoint"]
    for vm in vms:  # the secret reached the VM over the agent's TLS port, and only that way
        assert SECRET in (vm.root / "agent" / "job.env").read_text()
        assert SECRET not in (vm.root / "boot.sh").read_text()
    with arm.lock:
        held = json.dumps(list(arm.resources.values()))
    assert SECRET not in held, "nothing ARM holds (tags, custom data) carries the secret"

    answer = httpx.post(f"{endpoint}/v1/chat/completions", json=CHAT, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"].startswith("Hello! You said:")
    words = streamed_words(endpoint)
    assert len(words) >= 5 and "".join(words).startswith("Hello! You said:")

    wait_until(
        lambda: (
            "serving hello-1" in env.serve("logs", NAME, "--replica", "1", "--no-follow").stdout
        ),
        "the app's output in `serve logs --replica 1`",
        60,
        every=1,
    )

    victim = vm_of(arm, 1)
    victim.kill()  # the VM's processes crash; ARM still says it runs
    killed = time.monotonic()
    healed = wait_until(
        lambda: len(now := ready(env)) == 2 and all(r["id"] != 1 for r in now) and now,
        "a new replica READY in place of the dead one",
        BOOT_TO_READY_SECONDS,
        every=1,
    )
    kill_to_ready = time.monotonic() - killed
    replacement = vm_of(arm, max(r["id"] for r in healed))
    assert replacement.address not in {vm.address for vm in vms}
    for _ in range(4):
        answer = httpx.post(f"{endpoint}/v1/chat/completions", json=CHAT, timeout=10)
        assert answer.status_code == 200, answer.text

    down = env.serve("down", NAME, timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    wait_until(lambda: nothing_left(arm), "no VM, NIC, public IP or NSG left", 60, every=1)
    assert blobs_of(azurite, installation) == []
    assert not any(vm.alive() for vm in [*vms, replacement])
    print(f"serve up to 2 READY {up_to_ready:.1f} s; killed VM to replaced {kill_to_ready:.1f} s")


def status_json(env: Env) -> dict[str, Any]:
    out = env.serve("status", NAME, "--json")
    assert out.returncode == 0, out.stderr
    found: dict[str, Any] = json.loads(out.stdout)
    return found


def ready(env: Env) -> list[dict[str, Any]]:
    return [r for r in status_json(env)["replicas"] if r["status"] == "READY"]


def vm_of(arm: FakeAzureARM, replica_id: int) -> Any:
    """The booted VM of a replica, found by its tags as an operator would in the portal."""
    for name in arm.names(VM):
        tags = arm.tags_of(name)
        if tags.get(TAG_SERVICE) == NAME and tags.get(TAG_REPLICA_ID) == str(replica_id):
            booted = arm.farm.find(name) if arm.farm else None
            assert booted is not None, f"VM {name} never booted"
            return booted
    raise AssertionError(f"no VM for replica {replica_id}: {arm.names(VM)}")


def streamed_words(endpoint: str) -> list[str]:
    body = {**CHAT, "stream": True}
    words: list[str] = []
    started = time.monotonic()
    with httpx.stream("POST", f"{endpoint}/v1/chat/completions", json=body, timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                words.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
    assert time.monotonic() - started > 0.1, "streamed, not sent at once"
    return words


def nothing_left(arm: FakeAzureARM) -> bool:
    return all(arm.names(kind) == [] for kind in (VM, NIC, IP, NSG))


def blobs_of(azurite: azurite_npm.Azurite, installation: str) -> list[str]:
    """The service's bundles in the installation's container."""
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = blobs.get_container_client(bucket_name(installation))
    return list(container.list_blob_names(name_starts_with=f"bundles/{NAME}/"))


SPOT_SERVICE = """
  replica_policy: {min_replicas: 1, max_replicas: 1, num_overprovision: 0}
"""
NOTICE_SECONDS = 45


def test_a_spot_vm_warned_by_a_scheduled_preempt_event_drains_and_is_replaced_first(
    azure_controller: ControllerProcess, arm: FakeAzureARM, tmp_path: Path
) -> None:
    """The agent reads Azure's Scheduled Events; the controller drains the replica at the
    `Preempt` event (NotBefore 45 s ahead) and launches its replacement before the eviction."""
    env = azure_controller.env
    text = service_yaml(free_port()).replace("use_spot: false", "use_spot: true")
    spec = tmp_path / "spot.yaml"
    spec.write_text(text.replace("  replicas: 2\n", SPOT_SERVICE))
    up = env.serve("up", str(spec), "--detach", "--secret", f"HELLO_TOKEN={SECRET}")
    assert up.returncode == 0, up.stdout + up.stderr
    first = wait_until(lambda: ready(env), "a spot replica READY", BOOT_TO_READY_SECONDS)[0]
    assert first["spot"] is True
    victim = vm_of(arm, first["id"])

    arm.preempt(victim.name, notice_seconds=NOTICE_SECONDS)
    draining = wait_until(
        lambda: [r for r in status_json(env)["replicas"] if r["status"] == "DRAINING"],
        "the warned replica DRAINING",
        30,
        every=0.5,
    )
    assert draining[0]["id"] == first["id"] and victim.alive(), "drained before the eviction"
    url = f"{env.url}/api/v1/services/{NAME}/events"
    notice = [e for e in httpx.get(url).json() if e["kind"] == "preemption_notice"]
    assert len(notice) == 1 and 30 <= notice[0]["data"]["lead_seconds"] <= NOTICE_SECONDS
    replacement = wait_until(
        lambda: [r for r in status_json(env)["replicas"] if r["id"] > first["id"]],
        "a replacement launched at the notice",
        30,
        every=0.5,
    )
    assert victim.alive() and replacement, "launched while the warned VM still runs"
    wait_until(
        lambda: any(
            r["id"] == first["id"] and r["status"] == "PREEMPTED"
            for r in status_json(env)["replicas"]
        ),
        "the evicted replica PREEMPTED",
        NOTICE_SECONDS + 60,
        every=1,
    )
    wait_until(lambda: ready(env), "the replacement READY", BOOT_TO_READY_SECONDS, every=1)
    down = env.serve("down", NAME, timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    wait_until(lambda: nothing_left(arm), "no VM, NIC, public IP or NSG left", 60, every=1)
