"""Seconds from a GCP instance's boot to READY that the product's own steps add, on the
boot-mode Compute fake (instances run their startup script locally) with gcp-storage-emulator.

    .venv/bin/python benchmarks/cloud/boot_to_ready.py [--replicas 3] [--megabytes 10]

A real controller process runs `serve up` of examples/hello with `cloud: gcp`, its workdir
grown by `--megabytes` of incompressible bytes over 100 files (model-like data). For each
replica the instance's process start (t=0, when the fake runs its startup script) is compared
with the moment each of the agent's own log lines appears in the replica log: `listening`
(bash, python3, the agent unpacked from the script, its TLS key made), `unpack` (the bundle
fetched from the bucket by signed URL, digest checked, unpacked: from then on the agent is
waiting for its job, unless it has it already), `job
accepted` (the controller's hello and push: it pushes as soon as the agent answers, so the
job usually arrives while the bundle is still being fetched), `setup` (both in hand), and
READY (the controller's `ready_at`: setup, run, and the first passing readiness probe). The
VM's real boot (firmware, kernel, image, cloud-init) comes before t=0 and is not in these
figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fakes.gcp_boot import BootedInstance  # noqa: E402
from tests.fakes.gcp_compute import FakeGCPCompute  # noqa: E402
from tests.provisioners.object_store_kits import service_account_key  # noqa: E402
from tests.support.gcs_emulator import gcs_emulator  # noqa: E402
from tests.support.processes import ControllerProcess, Env, wait_until  # noqa: E402

NAME = "bench"
YAML = """
name: bench
service:
  readiness_probe: {{path: /health, initial_delay_seconds: 300}}
  replicas: {replicas}
resources: {{cloud: gcp, region: us-central1, cpus: 2, ports: 8080}}
envs: {{MODEL_NAME: bench-1}}
workdir: {workdir}
setup: python3 --version
run: python3 app.py
"""
EVENTS = {
    "listening": " listening ",
    "unpacked": " unpack workdir=",
    "accepted": " job accepted=true",
    "setup": 'phase phase="setup"',
}
"""The agent's own log lines (docs/cloud-replicas.md) that mark each step."""


@dataclass
class Watched:
    """When each step's log line appeared (seconds since the epoch)."""

    vm: BootedInstance
    seen: dict[str, float] = field(default_factory=dict)


def watch(vm: BootedInstance, out: Watched, stop: threading.Event) -> None:
    """Tail the replica log every 10 ms; the agent flushes each line as it happens (its own
    stamps have whole seconds only)."""
    offset, text = 0, ""
    while not stop.is_set() and len(out.seen) < len(EVENTS):
        try:
            with vm.replica_log.open("rb") as log:
                log.seek(offset)
                chunk = log.read()
        except OSError:
            chunk = b""
        now = time.time()
        offset += len(chunk)
        text += chunk.decode(errors="replace").lower()
        for key, marker in EVENTS.items():
            if key not in out.seen and marker.lower() in text:
                out.seen[key] = now
        time.sleep(0.01)


def workdir_of(root: Path, megabytes: float) -> Path:
    workdir = root / "workdir"
    shutil.copytree(REPO / "examples" / "hello", workdir)
    weights = workdir / "weights"
    weights.mkdir()
    each = int(megabytes * 1e6 / 100)
    for i in range(100):
        (weights / f"part-{i:03}.bin").write_bytes(os.urandom(each))
    return workdir


def replicas_of(env: Env) -> list[dict[str, object]]:
    out = env.serve("status", NAME, "--json")
    if out.returncode != 0:
        return []
    found: list[dict[str, object]] = json.loads(out.stdout)["replicas"]
    return found


def instance_for(fake: FakeGCPCompute, replica_id: object) -> str:
    with fake.lock:
        for (_, name), inst in fake.instances.items():
            if inst["labels"].get("serve-replica-id") == str(replica_id):
                return name
    raise KeyError(replica_id)


def run(replicas: int, megabytes: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="boot-to-ready-"))
    fake = FakeGCPCompute("spotserve-test", boot=True, boot_root=root / "vms")
    fake.start()
    stop = threading.Event()
    watched: dict[str, Watched] = {}
    controller: ControllerProcess | None = None
    try:
        with gcs_emulator() as gcs:
            env = Env(home=root / "home", database_url=f"sqlite:///{root / 'serve.db'}")
            env.extra.update(
                SERVE_CLOUDS="gcp",
                SERVE_GCP_API_ENDPOINT=fake.url,
                GOOGLE_CLOUD_PROJECT="spotserve-test",
                STORAGE_EMULATOR_HOST=gcs,
                GOOGLE_APPLICATION_CREDENTIALS=str(service_account_key(root / "signer.json")),
            )
            controller = ControllerProcess(env).start()
            spec = root / "service.yaml"
            spec.write_text(YAML.format(replicas=replicas, workdir=workdir_of(root, megabytes)))

            def follow_new_instances() -> None:
                while not stop.is_set():
                    assert fake.booter is not None
                    for name, vm in list(fake.booter.instances.items()):
                        if name not in watched:
                            watched[name] = Watched(vm)
                            threading.Thread(
                                target=watch, args=(vm, watched[name], stop), daemon=True
                            ).start()
                    time.sleep(0.01)

            threading.Thread(target=follow_new_instances, daemon=True).start()
            up = env.serve("up", str(spec), "--detach", timeout=300)
            assert up.returncode == 0, up.stdout + up.stderr

            def all_ready() -> list[dict[str, object]]:
                found = replicas_of(env)
                ready = [r for r in found if r["status"] == "READY"]
                return ready if len(ready) == replicas else []

            ready = wait_until(all_ready, f"{replicas} READY replicas", 300, 0.5)
            report(fake, watched, ready, megabytes)
            env.serve("down", NAME, timeout=300)
    finally:
        stop.set()
        if controller is not None:
            controller.kill()
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)


def report(
    fake: FakeGCPCompute,
    watched: dict[str, Watched],
    ready: list[dict[str, object]],
    megabytes: float,
) -> None:
    rows = []
    for replica in sorted(ready, key=lambda r: int(str(r["id"]))):
        seen = watched[instance_for(fake, replica["id"])]
        t0 = seen.vm.started_at
        steps = [seen.seen.get(k, float("nan")) - t0 for k in EVENTS]
        rows.append((int(str(replica["id"])), *steps, float(str(replica["ready_at"])) - t0))
    print(f"workdir: examples/hello + {megabytes:g} MB of incompressible bytes in 100 files")
    print("seconds after the instance's process started:")
    heads = ("replica", "agent TLS up", "bundle unpacked", "job accepted", "setup starts", "READY")
    print("  ".join(f"{h:>15}" for h in heads))
    for row in rows:
        print(f"{row[0]:>15}  " + "  ".join(f"{v:>15.2f}" for v in row[1:]))
    medians = [statistics.median(r[i] for r in rows) for i in range(1, len(heads))]
    print(f"{'median':>15}  " + "  ".join(f"{v:>15.2f}" for v in medians))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=10)
    args = parser.parse_args()
    run(args.replicas, args.megabytes)


if __name__ == "__main__":
    main()
