"""The job: pushed once over TLS, it copies bucket mounts, runs setup then run in the
working directory with envs and secrets, and keeps every step's output in the replica log.
Secrets appear only where the program can read them."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from provisioners.base import Bundle
from replica_manager.agent_client import AgentPhase, AgentRefused
from tests.agent.bundles import write_bundle
from tests.agent.conftest import Boot
from tests.agent.harness import (
    ENV_VALUE,
    RUN_TEXT,
    SECRET,
    SETUP_TEXT,
    BootedAgent,
    job_for,
    launch_request,
)

EXITED, FAILED = AgentPhase.EXITED, AgentPhase.FAILED


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def wait_until_in_log(agent: BootedAgent, text: str, seconds: float = 10) -> str:
    deadline = time.monotonic() + seconds
    while text not in (log := agent.log.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{text!r} not in the replica log:\n{log}"
        time.sleep(0.05)
    return log


def test_run_sees_envs_secrets_and_the_serve_variables_after_setup(boot_agent: Boot) -> None:
    request = launch_request(
        envs={"MODEL_NAME": ENV_VALUE, "PORT": "1"},
        run="cat setup.out > seen-setup; env > run.env; pwd > run.pwd",
    )
    agent = boot_agent(request)
    agent.trusted().send_job(job_for(request))
    assert agent.wait_for(EXITED, FAILED).exit_code == 0
    env = read_env(agent.workdir / "run.env")
    assert env["MODEL_NAME"] == ENV_VALUE and env["HF_TOKEN"] == SECRET
    assert env["SERVE_SERVICE_NAME"] == "chat" and env["SERVE_REPLICA_ID"] == "3"
    assert env["SERVE_REPLICA_PORT"] == env["PORT"] == str(request.port), "ours win"
    assert (agent.workdir / "seen-setup").read_text().strip() == SETUP_TEXT
    assert (agent.workdir / "run.pwd").read_text().strip() == str(agent.workdir)


def test_no_secret_or_env_value_is_anywhere_but_the_programs_environment(
    boot_agent: Boot,
) -> None:
    request = launch_request(run="echo started; env > run.env")
    agent = boot_agent(request)
    agent.trusted().send_job(job_for(request))
    agent.wait_for(EXITED)
    wait_until_in_log(agent, "run exited with code 0")
    places = {
        "boot script": agent.script.read_text(),
        "boot config": (agent.directory / "config.json").read_text(),
        "agent stdout and stderr": agent.console(),
        "replica log": agent.log.read_text(),
    }
    for place, text in places.items():
        for value in (SECRET, ENV_VALUE):
            assert value not in text, f"{value} found in the {place}"
    assert "started" in places["replica log"] and "started" in places["agent stdout and stderr"]
    env_file = agent.directory / "job.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f"HF_TOKEN={SECRET}" in env_file.read_text()


def test_a_second_job_is_refused_with_409(boot_agent: Boot) -> None:
    request = launch_request(setup=None, run="sleep 30")
    agent = boot_agent(request)
    client = agent.trusted()
    client.send_job(job_for(request))
    with pytest.raises(AgentRefused) as refused:
        client.send_job(job_for(request))
    assert refused.value.status == 409 and "already accepted a job" in str(refused.value)


def test_failed_setup_fails_with_its_exit_code_and_run_never_starts(boot_agent: Boot) -> None:
    request = launch_request(setup="true\nexit 3\necho after > never", run="touch ran")
    agent = boot_agent(request)
    agent.trusted().send_job(job_for(request))
    status = agent.wait_for(FAILED, EXITED)
    assert (status.phase, status.detail) == (FAILED, "setup failed with exit code 3")
    assert not (agent.workdir / "never").exists() and not (agent.workdir / "ran").exists()


def test_setup_stops_at_its_first_failing_command(boot_agent: Boot) -> None:
    request = launch_request(setup="false\necho after > never", run="true")
    agent = boot_agent(request)
    agent.trusted().send_job(job_for(request))
    assert agent.wait_for(FAILED, EXITED).detail == "setup failed with exit code 1"
    assert not (agent.workdir / "never").exists()


def test_run_exit_code_is_reported_and_the_agent_keeps_serving(boot_agent: Boot) -> None:
    request = launch_request(setup=None, run="exit 7")
    agent = boot_agent(request)
    client = agent.trusted()
    client.send_job(job_for(request))
    assert agent.wait_for(EXITED).exit_code == 7
    assert client.status().phase == EXITED and client.notice() is None


def test_a_job_sent_while_booting_runs_once_the_bundle_is_in_place(
    boot_agent: Boot, gated_file_server: tuple[Path, str, threading.Event]
) -> None:
    served, base, gate = gated_file_server
    bundle = write_bundle(served / "b.tar.gz", workdir={"from-bundle.txt": b"unpacked"})
    request = launch_request(
        Bundle(bundle.digest, bundle.path, bundle.path.stat().st_size),
        setup=None,
        run="cp from-bundle.txt seen",
    )
    agent = boot_agent(request, f"{base}/b.tar.gz")
    client = agent.trusted()
    assert client.status().phase == AgentPhase.BOOTING
    client.send_job(job_for(request))
    gate.set()
    assert agent.wait_for(EXITED, FAILED).exit_code == 0
    assert (agent.workdir / "seen").read_text() == "unpacked"


def test_signed_url_bucket_mounts_are_copied_to_their_targets(
    boot_agent: Boot, tmp_path: Path, file_server: tuple[Path, str]
) -> None:
    served, base = file_server
    (served / "a.bin").write_bytes(b"object a")
    (served / "b.bin").write_bytes(b"object b")
    target = tmp_path / "bucket"
    mounts = [
        {
            "target": str(target),
            "source": "s3://models/llama/",
            "urls": [
                {"url": f"{base}/a.bin?X-Amz-Signature=abc", "path": "a.bin"},
                {"url": f"{base}/b.bin", "path": "nested/b.bin"},
            ],
        },
        {
            "target": str(tmp_path / "one.bin"),
            "source": "gs://b/one",
            "urls": [{"url": f"{base}/a.bin"}],
        },
    ]
    request = launch_request(setup=None, run="true")
    agent = boot_agent(request)
    agent.trusted().send_job(job_for(request, mounts))
    assert agent.wait_for(EXITED, FAILED).phase == EXITED
    assert (target / "a.bin").read_bytes() == b"object a"
    assert (target / "nested" / "b.bin").read_bytes() == b"object b"
    assert (tmp_path / "one.bin").read_bytes() == b"object a"
    assert "X-Amz-Signature" not in agent.log.read_text(), "signatures are not logged"


def test_a_bucket_mount_whose_signed_url_answers_404_fails_with_cannot_read(
    boot_agent: Boot, tmp_path: Path, file_server: tuple[Path, str]
) -> None:
    _, base = file_server
    source = "https://account.blob.core.windows.net/container/weights"
    mounts = [
        {
            "target": str(tmp_path / "w"),
            "source": source,
            "urls": [{"url": f"{base}/missing", "path": "x"}],
        }
    ]
    request = launch_request(run="touch ran")
    agent = boot_agent(request)
    agent.trusted().send_job(job_for(request, mounts))
    status = agent.wait_for(FAILED, EXITED)
    assert status.phase == FAILED
    assert status.detail.startswith(f"cannot read {source}: HTTP 404")
    assert not (agent.workdir / "ran").exists()


def test_an_https_bucket_mount_that_cannot_be_read_fails_with_cannot_read(
    boot_agent: Boot, tmp_path: Path, self_signed_https_server: str
) -> None:
    source = f"{self_signed_https_server}/data.bin"
    mounts = [{"target": str(tmp_path / "data.bin"), "source": source, "urls": None}]
    request = launch_request(run="touch ran")
    agent = boot_agent(request)
    agent.trusted().send_job(job_for(request, mounts))
    status = agent.wait_for(FAILED, EXITED)
    assert status.phase == FAILED
    assert status.detail.startswith(f"cannot read {source}: ") and "CERTIFICATE" in status.detail
    assert not (tmp_path / "data.bin").exists()


def test_logs_by_offset_return_exactly_the_appended_bytes(boot_agent: Boot) -> None:
    request = launch_request(
        setup=None, run="printf 'line-one\\n'; sleep 0.3; printf 'line-two\\n'"
    )
    agent = boot_agent(request)
    client = agent.trusted()
    client.send_job(job_for(request))
    agent.wait_for(EXITED)
    wait_until_in_log(agent, "run exited with code 0")
    whole = agent.log.read_bytes()
    data, size = client.logs(0, 1 << 20)
    assert (data, size) == (whole, len(whole))
    middle = whole.index(b"line-two")
    assert client.logs(middle, 9) == (b"line-two\n", len(whole))
    assert client.logs(len(whole), 100) == (b"", len(whole))
    assert client.logs(len(whole) + 50, 100) == (b"", len(whole))


def test_the_replica_log_holds_a_line_for_each_step(
    boot_agent: Boot, tmp_path: Path, file_server: tuple[Path, str]
) -> None:
    served, base = file_server
    (served / "m").write_bytes(b"m")
    mounts = [{"target": str(tmp_path / "m"), "source": "s3://b/m", "urls": [{"url": f"{base}/m"}]}]
    request = launch_request()
    agent = boot_agent(request)
    agent.trusted().send_job(job_for(request, mounts))
    agent.wait_for(EXITED)
    log = wait_until_in_log(agent, "run exited with code 0")
    steps = ["unpack", "mount", '"setup"', '"running"', RUN_TEXT, '"exited"']
    positions = [log.index(step) for step in steps]
    assert positions == sorted(positions), log
    assert all(line.startswith("[spotserve] ") for line in log.splitlines() if RUN_TEXT not in line)


@pytest.mark.parametrize(
    ("job", "error"),
    [
        ({"run": ""}, "run must be a non-empty string"),
        ({"envs": {"BAD-NAME": "x"}}, "envs must map shell variable names"),
        ({"secrets": {"K": 1}}, "secrets must map shell variable names"),
        ({"replica_id": 99}, "this agent runs replica 3 of chat"),
        ({"bucket_mounts": [{"target": "relative", "source": "s3://b"}]}, "bucket_mounts"),
    ],
)
def test_a_malformed_job_is_refused_and_a_good_one_still_accepted(
    boot_agent: Boot, job: dict[str, object], error: str
) -> None:
    request = launch_request(setup=None, run="true")
    agent = boot_agent(request)
    client = agent.trusted()
    with pytest.raises(AgentRefused) as refused:
        client.send_job({**job_for(request), **job})
    assert refused.value.status == 400 and error in str(refused.value)
    client.send_job(job_for(request))
    assert agent.wait_for(EXITED).exit_code == 0


def test_an_oversized_job_is_refused_with_413(boot_agent: Boot) -> None:
    request = launch_request(setup=None, run="true")
    agent = boot_agent(request)
    client = agent.trusted()
    with pytest.raises(AgentRefused) as refused:
        client.send_job({**job_for(request), "envs": {"BIG": "x" * (1 << 20)}})
    assert refused.value.status == 413
    assert client.status().phase == AgentPhase.WAITING_FOR_JOB
    assert os.path.exists(agent.directory / "config.json")
