"""`serve up examples/hello/gcp.yaml` (`cloud: gcp`) on instances that really boot.

The controller is a real process configured as an operator would (SERVE_CLOUDS=gcp,
SERVE_GCP_API_ENDPOINT, STORAGE_EMULATOR_HOST, a service-account key to sign URLs); Compute
Engine is the project's fake in boot mode (each instance runs its startup script, the replica
agent, at its own 127.77.x.y) and Cloud Storage is gcp-storage-emulator. The bundle goes
through the bucket, the job through the agent, the answers through the load balancer.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.fakes.gcp_compute import FakeGCPCompute
from tests.provisioners.object_store_kits import service_account_key
from tests.support.gcs_emulator import gcs_emulator
from tests.support.processes import REPO, ControllerProcess, Env, wait_until

pytestmark = pytest.mark.slow

NAME = "hello"
READY_SECONDS = 180
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
SPEC = "examples/hello/gcp.yaml"


@pytest.fixture
def gcs() -> Iterator[str]:
    with gcs_emulator() as url:
        yield url


@pytest.fixture
def compute(tmp_path: Path) -> Iterator[FakeGCPCompute]:
    fake = FakeGCPCompute(project="spotserve-test", boot=True, boot_root=tmp_path / "vms")
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def gcp_controller(
    sqlite_env: Env, compute: FakeGCPCompute, gcs: str, tmp_path: Path
) -> Iterator[ControllerProcess]:
    sqlite_env.extra.update(
        SERVE_CLOUDS="gcp",
        SERVE_GCP_API_ENDPOINT=compute.url,
        GOOGLE_CLOUD_PROJECT="spotserve-test",
        STORAGE_EMULATOR_HOST=gcs,
        GOOGLE_APPLICATION_CREDENTIALS=str(service_account_key(tmp_path / "signer.json")),
    )
    proc = ControllerProcess(sqlite_env).start()
    yield proc
    proc.kill()


def status(env: Env) -> dict[str, Any]:
    out = env.serve("status", NAME, "--json")
    assert out.returncode == 0, out.stderr
    found: dict[str, Any] = json.loads(out.stdout)
    return found


def ready_ids(env: Env) -> set[int]:
    return {r["id"] for r in status(env)["replicas"] if r["status"] == "READY"}


def bundle_objects(gcs: str) -> list[str]:
    client = storage.Client(
        project="spotserve-test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": gcs},
    )
    return [
        blob.name
        for bucket in client.list_buckets()
        for blob in client.list_blobs(bucket.name, prefix=f"bundles/{NAME}/")
    ]


def instance_of(compute: FakeGCPCompute, replica_id: int) -> str:
    with compute.lock:
        names = [
            name
            for (_, name), inst in compute.instances.items()
            if inst["labels"].get("serve-replica-id") == str(replica_id)
        ]
    assert len(names) == 1, names
    return names[0]


def stream_arrivals(endpoint: str) -> list[float]:
    times = []
    body = {**CHAT, "stream": True}
    with httpx.stream("POST", f"{endpoint}/v1/chat/completions", json=body, timeout=30) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                times.append(time.monotonic())
    return times


def test_hello_on_gcp_instances_that_boot_answers_logs_heals_and_leaves_nothing(
    gcp_controller: ControllerProcess, compute: FakeGCPCompute, gcs: str, tmp_path: Path
) -> None:
    env = gcp_controller.env
    up = env.serve("up", SPEC, "--detach", cwd=REPO)
    assert up.returncode == 0, up.stdout + up.stderr

    wait_until(lambda: len(ready_ids(env)) == 2, "2 READY replicas on GCP", READY_SECONDS, 1)
    svc = status(env)
    ready = [r for r in svc["replicas"] if r["status"] == "READY"]
    assert [r for r in svc["replicas"] if r not in ready] == [], "none failed on the way"
    assert {r["cloud"] for r in ready} == {"gcp"}
    assert all(str(r["url"]).startswith("http://127.77.") for r in ready), svc
    assert {r["instance_type"] for r in ready} == {"n2-standard-2"}
    assert bundle_objects(gcs), "the bundle went through the bucket"

    endpoint = svc["endpoint"]
    answer = httpx.post(f"{endpoint}/v1/chat/completions", json=CHAT, timeout=30).json()
    assert answer["choices"][0]["message"]["content"].startswith("Hello! You said:")
    arrivals = stream_arrivals(endpoint)
    assert len(arrivals) >= 5 and arrivals[-1] - arrivals[0] > 0.1, "streamed, not at once"

    def app_output() -> bool:
        logs = env.serve("logs", NAME, "--replica", "1", "--no-follow")
        return logs.returncode == 0 and "serving hello-1 on port" in logs.stdout

    wait_until(app_output, "the app's output in `serve logs --replica 1`", 60, 1)

    victim = instance_of(compute, 1)
    os.killpg(compute.booted(victim).process.pid, signal.SIGKILL)
    wait_until(
        lambda: len(ids := ready_ids(env)) == 2 and 1 not in ids,
        "a new replica READY in place of replica 1",
        READY_SECONDS,
        1,
    )

    down = env.serve("down", NAME)
    assert down.returncode == 0, down.stdout + down.stderr
    wait_until(lambda: not compute.instances, "no instance left", 120, 1)
    wait_until(lambda: not compute.firewalls, "no firewall rule left", 120, 1)
    wait_until(lambda: not bundle_objects(gcs), "no object under bundles/hello/", 120, 1)
