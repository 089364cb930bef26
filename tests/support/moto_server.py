"""A moto server process, and the environment that points the product at it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.support.processes import free_port, wait_until

IMAGE_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


@contextmanager
def moto_server(*, authenticate: bool = False) -> Iterator[str]:
    """A moto server process; `authenticate` makes it check every request's access key
    against its IAM (moto's INITIAL_NO_AUTH_ACTION_COUNT=0), so unknown keys are refused."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"} if authenticate else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), "moto to answer", 30)
        yield url
    finally:
        proc.kill()
        proc.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/moto-api/", timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def aws_env(url: str, scratch: Path) -> dict[str, str]:
    """What an operator sets to run the product against moto (see README, AWS)."""
    return {
        "SERVE_CLOUDS": "aws",
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(scratch / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "none"),
        "SERVE_AWS_REGIONS": "us-east-1",
        "SERVE_AWS_IMAGE_PARAMETER": IMAGE_PARAMETER,
    }


def tagged_instances(url: str, service: str, states: tuple[str, ...]) -> list[dict[str, Any]]:
    ec2 = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:serve-service", "Values": [service]},
            {"Name": "instance-state-name", "Values": list(states)},
        ]
    )
    return [i for r in found["Reservations"] for i in r["Instances"]]


def s3_keys(url: str, bucket_prefix: str, key_prefix: str) -> list[str]:
    """Every key under `key_prefix` in every moto bucket whose name starts with
    `bucket_prefix` (the installation's bundle bucket has a name made from its id)."""
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    buckets = [
        b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(bucket_prefix)
    ]
    return [
        item["Key"]
        for bucket in buckets
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=key_prefix).get("Contents", [])
    ]
