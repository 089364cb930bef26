"""The service YAMLs in `examples/` are ones an operator can deploy as they are.

Each is checked through the real CLI (`serve validate --json`, a new process, no controller)
for what it promises in its comments: the GPUs, spot, the replica policy, the probe and the
port. Then the boot script the adapters would send for one replica is built from it, what
its `run` reads from the workdir is looked for where the replica will find it, and TGI's
commands (the one example that needs no GPU to run its shell) are run by bash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.spec import ServiceSpec, load_spec_file
from controller.templates import replica_template
from policies.types import Location, Offer
from provisioners.aws import USER_DATA_LIMIT
from provisioners.base import AGENT_PORT, Bundle, LaunchRequest, ResourceRequest
from provisioners.catalog import default_catalog
from provisioners.startup_script import build_boot_script
from tests.support.processes import REPO

EXAMPLES = REPO / "examples"
ANY_GPU = {"L4": 1, "A10G": 1, "A100": 1}
HF_TOKEN_VALUE = "hf_example-token-that-must-not-reach-the-cloud"
# A presigned S3 GET with a session token runs to about 1.5 KB; the boot script carries one.
BUNDLE_URL = "https://spotserve-inst.s3.us-east-1.amazonaws.com/svc/bundle?" + "X" * 2048


@dataclass(frozen=True)
class Example:
    """What one example's comments promise."""

    folder: str
    gpus: dict[str, int]
    port: int
    probe_path: str
    policy: dict[str, Any]
    reads_from_workdir: tuple[str, ...] = field(default=())

    @property
    def path(self) -> Path:
        return EXAMPLES / self.folder / "service.yaml"


GPU_EXAMPLES = [
    Example(
        "vllm",
        gpus=ANY_GPU,
        port=8000,
        probe_path="/v1/chat/completions",
        policy={
            "min_replicas": 2,
            "max_replicas": 4,
            "target_qps_per_replica": 2,
            "dynamic_ondemand_fallback": True,
        },
        reads_from_workdir=("engine.yaml",),
    ),
    Example(
        "sglang",
        gpus=ANY_GPU,
        port=30000,
        probe_path="/health_generate",
        policy={
            "min_replicas": 2,
            "max_replicas": 3,
            "target_qps_per_replica": 2,
            "base_ondemand_fallback_replicas": 1,
        },
    ),
    Example(
        "tgi",
        gpus={"L4": 1},
        port=8080,
        probe_path="/health",
        policy={
            "min_replicas": 2,
            "max_replicas": 2,
            "spot_placer": "dynamic_fallback",
            "num_overprovision": 1,
            "dynamic_ondemand_fallback": True,
        },
    ),
]
ids = [e.folder for e in GPU_EXAMPLES]
WITH_WORKDIR = [e for e in GPU_EXAMPLES if e.reads_from_workdir]


def service_yamls() -> list[Path]:
    """Every YAML under examples/ that is a service (has a `service:` section)."""
    found = sorted(EXAMPLES.glob("*/*.yaml"))
    return [p for p in found if "service" in (yaml.safe_load(p.read_text()) or {})]


@pytest.fixture(scope="module")
def validate(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], dict[str, Any]]:
    """`serve validate FILE --json` as an operator runs it, from the repository root."""
    home = tmp_path_factory.mktemp("serve-home")
    env = {**os.environ, "PYTHONPATH": str(REPO), "SERVE_HOME": str(home)}

    @cache
    def run(path: Path) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "controller", "validate", str(path), "--json"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, f"{path}: {out.stdout}{out.stderr}"
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    return run


@pytest.mark.parametrize("path", service_yamls(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_validates_with_no_key_that_is_ignored_here(
    validate: Callable[[Path], dict[str, Any]], path: Path
) -> None:
    result = validate(path)
    assert result["valid"] is True
    ignored = [w for w in result["warnings"] if "has no value" not in w]
    assert ignored == [], "every key means something here"
    unset = [w for w in result["warnings"] if "has no value" in w]
    assert all("--secret HF_TOKEN" in w for w in unset), "only the token comes at serve up"


def test_every_gpu_example_is_checked_here() -> None:
    gpu_yamls = {p for p in service_yamls() if p.parent.name != "hello"}
    assert gpu_yamls == {e.path for e in GPU_EXAMPLES}


@pytest.mark.parametrize("example", GPU_EXAMPLES, ids=ids)
def test_asks_for_the_gpus_it_names_on_spot(
    validate: Callable[[Path], dict[str, Any]], example: Example
) -> None:
    resources = validate(example.path)["spec"]["resources"]
    if resources["any_of"]:
        candidates = [place["accelerators"] for place in resources["any_of"]]
        assert all(place["use_spot"] is None for place in resources["any_of"])
    else:
        candidates = [{name: n} for name, n in resources["accelerators"].items()]
    assert candidates == [{name: n} for name, n in example.gpus.items()]
    assert resources["use_spot"] is True


@pytest.mark.parametrize("example", GPU_EXAMPLES, ids=ids)
def test_every_gpu_it_names_is_sold_on_spot_in_the_catalog(example: Example) -> None:
    for request in load_spec_file(example.path).resource_requests():
        for gpu in request.accelerators:
            one = ResourceRequest(accelerators=(gpu,), use_spot=True)
            assert default_catalog().candidates(one), f"{example.folder}: no spot {gpu}"


@pytest.mark.parametrize("example", GPU_EXAMPLES, ids=ids)
def test_scales_by_the_replica_policy_it_writes(
    validate: Callable[[Path], dict[str, Any]], example: Example
) -> None:
    policy = validate(example.path)["spec"]["service"]["replica_policy"]
    assert {key: policy[key] for key in example.policy} == example.policy


PLACED = [e for e in GPU_EXAMPLES if e.policy.get("spot_placer")]


@pytest.mark.parametrize("example", PLACED, ids=[e.folder for e in PLACED])
def test_spot_placer_is_given_one_gpu_type_as_skypilot_requires(
    validate: Callable[[Path], dict[str, Any]], example: Example
) -> None:
    # SkyPilot's SpotPlacer: "Multiple resources are not supported for smart spot placement."
    resources = validate(example.path)["spec"]["resources"]
    assert resources["any_of"] is None and resources["ordered"] is None
    assert len(resources["accelerators"]) == 1


@pytest.mark.parametrize("example", GPU_EXAMPLES, ids=ids)
def test_probes_and_serves_where_it_says(
    validate: Callable[[Path], dict[str, Any]], example: Example
) -> None:
    spec = validate(example.path)["spec"]
    probe = spec["service"]["readiness_probe"]
    assert probe["path"] == example.probe_path
    assert probe["initial_delay_seconds"] >= 1200, "a model download needs time"
    assert spec["resources"]["ports"] == [example.port]
    # Locally several replicas share one machine, each on its own SERVE_REPLICA_PORT.
    assert '--port "$SERVE_REPLICA_PORT"' in spec["run"] or '"$SERVE_REPLICA_PORT:' in spec["run"]


@pytest.mark.parametrize("example", GPU_EXAMPLES, ids=ids)
@pytest.mark.parametrize("section", ["setup", "run"])
def test_commands_are_valid_bash(example: Example, section: str) -> None:
    script = getattr(load_spec_file(example.path), section)
    out = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_vllm_probe_asks_for_the_model_it_serves(
    validate: Callable[[Path], dict[str, Any]],
) -> None:
    spec = validate(EXAMPLES / "vllm" / "service.yaml")["spec"]
    post_data = spec["service"]["readiness_probe"]["post_data"]
    assert post_data["model"] == spec["envs"]["MODEL_NAME"]
    assert post_data["max_tokens"] == 1


@pytest.mark.parametrize("example", GPU_EXAMPLES, ids=ids)
def test_hf_token_is_a_secret_given_at_serve_up(
    validate: Callable[[Path], dict[str, Any]], example: Example
) -> None:
    spec = validate(example.path)["spec"]
    assert spec["secrets"] == {"HF_TOKEN": "<redacted>"}
    assert "HF_TOKEN" not in spec["envs"]
    assert yaml.safe_load(example.path.read_text())["secrets"] == {"HF_TOKEN": None}


# The boot script one replica of each example would get.


def launch_request(spec: ServiceSpec, service: str) -> LaunchRequest:
    """Replica 1's launch request, built from the controller's template as
    `replica_manager.execute.Executor._request` builds it (keep the two in step), with
    HF_TOKEN given as `serve up --secret HF_TOKEN` gives it."""
    template = replica_template(service, 1, spec)
    secrets = {name: HF_TOKEN_VALUE for name in spec.secrets}
    return LaunchRequest(
        service=template.service,
        replica_id=1,
        launch_token="0123456789abcdef0123456789abcdef",
        controller_id="ctrl",
        offer=Offer(Location("aws", "us-east-1", "us-east-1a"), 0.8048, 0.3141, "g6.xlarge"),
        spot=True,
        port=template.port,
        run=template.run,
        setup=template.setup,
        envs={k: v for k, v in template.envs.items() if k not in secrets},
        secrets=secrets,
        workdir=template.workdir,
        resources=template.resources[0],
        agent_token="agent-token-for-replica-1",
        bundle=Bundle(digest="0" * 64, path=Path("/nonexistent/bundle.tar.gz"), size=1 << 20),
    )


def boot_script(request: LaunchRequest) -> str:
    """What the AWS adapter sends as user data for this request: the agent's boot script."""
    return build_boot_script(request, BUNDLE_URL, cloud="aws", agent_port=AGENT_PORT)


@pytest.mark.parametrize("example", GPU_EXAMPLES, ids=ids)
def test_boot_script_fits_in_ec2_user_data(example: Example) -> None:
    spec = load_spec_file(example.path)
    script = boot_script(launch_request(spec, spec.name or example.folder))
    assert len(script.encode()) <= USER_DATA_LIMIT


@pytest.mark.parametrize("example", GPU_EXAMPLES, ids=ids)
def test_boot_script_carries_neither_the_job_nor_a_secret(example: Example) -> None:
    spec = load_spec_file(example.path)
    script = boot_script(launch_request(spec, spec.name or example.folder))
    assert HF_TOKEN_VALUE not in script
    for value in spec.envs.values():
        assert value is None or value not in script
    assert spec.run.strip() not in script
    assert spec.setup is None or spec.setup.strip() not in script


# What `run` reads from the workdir, where the replica will find it.


@pytest.mark.parametrize("example", WITH_WORKDIR, ids=[e.folder for e in WITH_WORKDIR])
def test_workdir_holds_the_files_run_reads(example: Example) -> None:
    spec = load_spec_file(example.path)
    assert spec.workdir is not None
    for name in example.reads_from_workdir:
        assert name in spec.run
        assert isinstance(yaml.safe_load((REPO / spec.workdir / name).read_text()), dict)


def packed_bundle(spec: ServiceSpec, dest: Path) -> Path:
    """The bundle `serve up` uploads for `spec`, run from the repository root."""
    from controller.bundle import pack
    from controller.cli.bundle_upload import sources

    workdir, mounts = sources(spec, REPO)
    bundle = pack(workdir, mounts, dest)
    assert bundle is not None
    return bundle.path


@pytest.mark.parametrize("example", WITH_WORKDIR, ids=[e.folder for e in WITH_WORKDIR])
def test_bundle_packs_the_files_run_reads(example: Example, tmp_path: Path) -> None:
    spec = load_spec_file(example.path)
    assert spec.workdir is not None
    with tarfile.open(packed_bundle(spec, tmp_path), "r:gz") as bundle:
        manifest = json.loads(bundle.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest["workdir"] is True
        for name in example.reads_from_workdir:
            packed = bundle.extractfile(f"workdir/{name}")
            assert packed is not None
            assert packed.read() == (REPO / spec.workdir / name).read_bytes()


# TGI's commands, run by bash as the replica runs them, against stand-ins for the VM's
# `nvidia-smi`, `nvidia-ctk` and `docker` that record how they were called.


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def run_tgi_commands(tmp_path: Path) -> tuple[ServiceSpec, list[str]]:
    spec = load_spec_file(EXAMPLES / "tgi" / "service.yaml")
    bin_dir, calls = tmp_path / "bin", tmp_path / "docker.calls"
    bin_dir.mkdir()
    stand_in(bin_dir, "nvidia-smi", "echo 'GPU 0: NVIDIA L4'")
    stand_in(bin_dir, "nvidia-ctk", "true")
    stand_in(bin_dir, "docker", f'echo "$*" >> {calls}; echo "HF_TOKEN=$HF_TOKEN" >> {calls}')
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        **{k: v or "" for k, v in spec.envs.items()},
        "HF_TOKEN": HF_TOKEN_VALUE,
        "SERVE_REPLICA_PORT": "18080",
    }
    for command in (["bash", "-e", "-c", spec.setup or ""], ["bash", "-c", spec.run]):
        subprocess.run(command, env=env, cwd=tmp_path, timeout=30, check=True)
    return spec, calls.read_text().splitlines()


def test_tgi_setup_pulls_the_pinned_image_when_docker_is_there(tmp_path: Path) -> None:
    spec, calls = run_tgi_commands(tmp_path)
    assert calls[0] == f"pull {spec.envs['TGI_IMAGE']}"


def test_tgi_run_serves_on_the_replica_port(tmp_path: Path) -> None:
    spec, calls = run_tgi_commands(tmp_path)
    run_args = calls[2]
    assert run_args.startswith("run ") and "-p 18080:80" in run_args
    assert run_args.endswith(f"{spec.envs['TGI_IMAGE']} --model-id {spec.envs['MODEL_ID']}")


def test_tgi_run_hands_the_token_to_docker_by_name_only(tmp_path: Path) -> None:
    _, calls = run_tgi_commands(tmp_path)
    assert "-e HF_TOKEN " in calls[2] and HF_TOKEN_VALUE not in calls[2]
    assert calls[3] == f"HF_TOKEN={HF_TOKEN_VALUE}"
