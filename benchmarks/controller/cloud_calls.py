"""EC2 calls a service costs, counted at the wire (moto behind the recording proxy).

    .venv/bin/python benchmarks/controller/cloud_calls.py [--services 1] [--replicas 2]
        [--ticks 10] [--json]

One controller (in this process, its schedule driven here) runs N services of M on-demand
replicas on AWS in us-east-1 with every catalog AWS region enabled, as on a real account.
Once the replicas are launched it counts, per API action: the calls of one ordinary tick
per service (the mean over `--ticks`), of a tick with the orphan scan (each service, every
`SERVE_ORPHAN_SCAN_SECONDS`, default 60 s), of the first tick after becoming the leader
(which searches every region) and of one installation sweep (every `SERVE_SWEEP_SECONDS`,
default 600 s). A real account throttles EC2 at a few calls per
second per action (RequestLimitExceeded), so these numbers are what decides how many
services one account can serve.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from controller.runtime import ControllerRuntime  # noqa: E402
from controller.services import create_service  # noqa: E402
from controller.settings import Settings  # noqa: E402
from controller.spec import load_spec_text  # noqa: E402
from provisioners.catalog import default_catalog  # noqa: E402
from tests.fakes.moto_ec2 import MotoEC2  # noqa: E402

MOTO_IMAGE = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
SPEC = """
service:
  readiness_probe: {path: /health, initial_delay_seconds: 3600}
  replicas: REPLICAS
resources: {cloud: aws, region: us-east-1, accelerators: T4:1, ports: 8080}
run: python3 -m http.server 8080
"""


def main() -> int:
    args = _args()
    regions = default_catalog().regions("aws")
    fake = MotoEC2(regions=regions).start()
    try:
        with _aws_env(fake), tempfile.TemporaryDirectory() as tmp:
            result = measure(fake, Path(tmp), args.services, args.replicas, args.ticks)
    finally:
        fake.stop()
    result["regions_enabled"] = len(regions)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


def measure(fake: MotoEC2, home: Path, services: int, replicas: int, ticks: int) -> dict[str, Any]:
    settings = replace(
        Settings.from_env({}),
        home=home,
        database_url=f"sqlite:///{home / 'serve.db'}",
        clouds=("aws",),
        orphan_scan_seconds=3600.0,
    )
    rt = ControllerRuntime(settings)
    rt.start(schedule=False)
    assert rt.lead() and rt.reconciler is not None
    names = [f"svc{i}" for i in range(services)]
    spec = load_spec_text(SPEC.replace("REPLICAS", str(replicas)))
    for name in names:
        create_service(rt.db, settings, rt.clock, name, spec)
    for _ in range(5):  # launch, and the first scan after leading
        for name in names:
            rt.reconciler.tick(name)
    assert fake.proxy is not None
    out: dict[str, Any] = {"services": services, "replicas": replicas}
    fake.proxy.clear()
    for _ in range(ticks):
        for name in names:
            rt.reconciler.tick(name)
    out["per_tick_per_service"] = _per(fake, ticks * services)
    fake.proxy.clear()
    rt.reconciler.settings = replace(settings, orphan_scan_seconds=0.0)
    for name in names:
        rt.reconciler.tick(name)
    out["per_tick_with_orphan_scan_per_service"] = _per(fake, services)
    fake.proxy.clear()
    rt.reconciler.rescan_all()
    for name in names:
        rt.reconciler.tick(name)
    out["per_tick_with_first_scan_after_leading_per_service"] = _per(fake, services)
    fake.proxy.clear()
    rt.reconciler.sweep_installation()
    out["per_installation_sweep"] = _per(fake, 1)
    with contextlib.suppress(Exception):
        rt.stop()
    return out


def _per(fake: MotoEC2, divisor: int) -> dict[str, float]:
    assert fake.proxy is not None
    counts = Counter(c.action for c in fake.proxy.received_calls() if c.service == "ec2")
    per = {action: round(n / divisor, 2) for action, n in sorted(counts.items())}
    per["total"] = round(sum(counts.values()) / divisor, 2)
    return per


@contextlib.contextmanager
def _aws_env(fake: MotoEC2) -> Any:
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": fake.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "SERVE_AWS_IMAGE_PARAMETER": MOTO_IMAGE,
        }
    )
    for name in ("AWS_PROFILE", "SERVE_AWS_REGIONS", "SERVE_AWS_IMAGE_ID"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _print(result: dict[str, Any]) -> None:
    print(
        f"{result['services']} service(s) x {result['replicas']} replicas on AWS, "
        f"{result['regions_enabled']} regions enabled; EC2 calls:"
    )
    for key in (
        "per_tick_per_service",
        "per_tick_with_orphan_scan_per_service",
        "per_tick_with_first_scan_after_leading_per_service",
    ):
        print(f"  {key}: {result[key]}")
    print(f"  per_installation_sweep: {result['per_installation_sweep']}")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--ticks", type=int, default=10)
    p.add_argument("--json", action="store_true")
    return p.parse_args()


if __name__ == "__main__":
    raise SystemExit(main())
