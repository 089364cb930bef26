"""`serve up` with `cloud: aws` against a moto server process, configured the way the
README tells an operator: AWS_ENDPOINT_URL and SERVE_CLOUDS=aws. No VM really boots, so
replicas never get ready; what is checked is that real EC2 calls create tagged instances,
that the service's workdir is staged in the installation's S3 bucket (moto's S3, through the
same AWS_ENDPOINT_URL), and that `serve down` terminates every instance and leaves no object
under the bucket's `bundles/<service>/`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.moto_server import aws_env, moto_server, s3_keys, tagged_instances
from tests.support.processes import ControllerProcess, Env, wait_until

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
workdir: {workdir}
run: python3 -m http.server 8080
"""


@pytest.fixture
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def aws_controller(sqlite_env: Env, moto: str, tmp_path: Path) -> Iterator[ControllerProcess]:
    sqlite_env.extra.update(aws_env(moto, tmp_path))
    proc = ControllerProcess(sqlite_env).start()
    yield proc
    proc.kill()


def test_serve_up_on_moto_launches_tagged_spot_instances_and_down_terminates_them(
    aws_controller: ControllerProcess, moto: str, tmp_path: Path
) -> None:
    env = aws_controller.env
    workdir = tmp_path / "app"
    workdir.mkdir()
    (workdir / "index.html").write_text("hello from the workdir\n")
    spec = tmp_path / "gpu.yaml"
    spec.write_text(YAML.replace("{workdir}", str(workdir)))
    up = env.serve("up", str(spec), "--detach")
    assert up.returncode == 0, up.stderr

    def ours(states: tuple[str, ...]) -> list[dict]:
        return tagged_instances(moto, "gpu", states)

    wait_until(lambda: len(ours(("pending", "running"))) == 2, "2 spot instances on moto", 60)
    instances = ours(("pending", "running"))
    assert all(i["InstanceType"] == "g4dn.xlarge" for i in instances)
    assert all(i.get("InstanceLifecycle") == "spot" for i in instances)
    svc = env.status("gpu")
    assert svc is not None
    assert {r["cloud"] for r in svc["replicas"]} == {"aws"}
    assert {r["zone"][:-1] for r in svc["replicas"]} == {"us-east-1"}
    staged = s3_keys(moto, "spotserve-", "bundles/gpu/")
    assert len(staged) == 1 and staged[0].endswith(".tar.gz"), staged

    down = env.serve("down", "gpu")
    assert down.returncode == 0, down.stderr
    assert ours(("pending", "running")) == []
    wait_until(lambda: s3_keys(moto, "spotserve-", "bundles/gpu/") == [], "no bundle left", 60)
