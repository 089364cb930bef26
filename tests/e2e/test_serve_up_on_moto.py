"""`serve up` with `cloud: aws` against a moto server process, configured the way the
README tells an operator: AWS_ENDPOINT_URL and SERVE_CLOUDS=aws. No VM really boots, so
replicas never get ready; what is checked is that real EC2 calls create tagged instances
and that `serve down` terminates every one of them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.support.processes import ControllerProcess, Env, free_port, wait_until

pytestmark = pytest.mark.slow

YAML = """
name: gpu
service:
  readiness_probe: {path: /health, initial_delay_seconds: 600}
  replicas: 2
resources:
  cloud: aws
  region: us-east-1
  accelerators: T4:1
  use_spot: true
  ports: 8080
run: python3 -m http.server 8080
"""


@pytest.fixture
def moto_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url), "moto to answer", 30)
    yield url
    proc.kill()
    proc.wait()


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/moto-api/", timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.fixture
def aws_controller(
    sqlite_env: Env, moto_server: str, tmp_path: Path
) -> Iterator[ControllerProcess]:
    sqlite_env.extra.update(
        {
            "SERVE_CLOUDS": "aws",
            "AWS_ENDPOINT_URL": moto_server,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "SERVE_AWS_REGIONS": "us-east-1",
            "SERVE_AWS_IMAGE_PARAMETER": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        }
    )
    proc = ControllerProcess(sqlite_env).start()
    yield proc
    proc.kill()


def test_serve_up_on_moto_launches_tagged_spot_instances_and_down_terminates_them(
    aws_controller: ControllerProcess, moto_server: str, tmp_path: Path
) -> None:
    env = aws_controller.env
    spec = tmp_path / "gpu.yaml"
    spec.write_text(YAML)
    up = env.serve("up", str(spec), "--detach")
    assert up.returncode == 0, up.stderr
    ec2 = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def ours(states: tuple[str, ...]) -> list[dict]:
        found = ec2.describe_instances(
            Filters=[
                {"Name": "tag:serve-service", "Values": ["gpu"]},
                {"Name": "instance-state-name", "Values": list(states)},
            ]
        )
        return [i for r in found["Reservations"] for i in r["Instances"]]

    wait_until(lambda: len(ours(("pending", "running"))) == 2, "2 spot instances on moto", 60)
    instances = ours(("pending", "running"))
    assert all(i["InstanceType"] == "g4dn.xlarge" for i in instances)
    assert all(i.get("InstanceLifecycle") == "spot" for i in instances)
    svc = env.status("gpu")
    assert svc is not None
    assert {r["cloud"] for r in svc["replicas"]} == {"aws"}
    assert {r["zone"][:-1] for r in svc["replicas"]} == {"us-east-1"}

    down = env.serve("down", "gpu")
    assert down.returncode == 0, down.stderr
    assert ours(("pending", "running")) == []
