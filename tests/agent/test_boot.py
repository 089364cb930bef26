"""Boot: the real boot script starts the agent, which fetches, checks and unpacks the
bundle before it waits for its job; any bundle it cannot trust ends the boot as failed."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import time
from pathlib import Path

import pytest

from provisioners.base import Bundle
from replica_manager.agent_client import AgentPhase
from tests.agent.bundles import DirMount, FileMount, Raw, write_bundle
from tests.agent.conftest import Boot
from tests.agent.harness import launch_request

WAITING = AgentPhase.WAITING_FOR_JOB
FAILED = AgentPhase.FAILED


def as_bundle(path: Path, digest: str) -> Bundle:
    return Bundle(digest=digest, path=path, size=path.stat().st_size if path.exists() else 0)


def test_without_a_bundle_the_agent_waits_for_its_job_in_an_empty_workdir(
    boot_agent: Boot,
) -> None:
    agent = boot_agent(launch_request())
    agent.wait_for(WAITING)
    assert agent.workdir.is_dir() and list(agent.workdir.iterdir()) == []


def test_file_bundle_is_unpacked_into_the_workdir_and_onto_mount_targets(
    boot_agent: Boot, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    bundle = write_bundle(
        tmp_path / "b.tar.gz",
        workdir={"app.py": b"print('hi')\n", "pkg/mod.py": b"X = 1\n"},
        mounts=[
            FileMount(str(data / "config.json"), b'{"a": 1}'),
            DirMount(str(data / "weights"), {"w.bin": b"\x00\x01", "sub/more.bin": b"\x02"}),
        ],
    )
    agent = boot_agent(launch_request(as_bundle(bundle.path, bundle.digest)), bundle.url)
    agent.wait_for(WAITING)
    assert (agent.workdir / "app.py").read_bytes() == b"print('hi')\n"
    assert (agent.workdir / "pkg" / "mod.py").read_bytes() == b"X = 1\n"
    assert (data / "config.json").read_bytes() == b'{"a": 1}'
    assert (data / "weights" / "sub" / "more.bin").read_bytes() == b"\x02"


def test_bundle_is_fetched_over_http(
    boot_agent: Boot, tmp_path: Path, file_server: tuple[Path, str]
) -> None:
    served, base = file_server
    bundle = write_bundle(served / "b.tar.gz", workdir={"served.txt": b"over http"})
    agent = boot_agent(launch_request(as_bundle(bundle.path, bundle.digest)), f"{base}/b.tar.gz")
    agent.wait_for(WAITING)
    assert (agent.workdir / "served.txt").read_text() == "over http"


def test_bundle_made_by_the_controllers_packer_is_unpacked(
    boot_agent: Boot, tmp_path: Path
) -> None:
    bundle_module = pytest.importorskip("controller.bundle")
    source = tmp_path / "src"
    (source / "lib").mkdir(parents=True)
    (source / "lib" / "run.sh").write_text("echo packed\n")
    os.chmod(source / "lib" / "run.sh", 0o755)
    os.symlink("lib/run.sh", source / "start.sh")
    packed = bundle_module.pack(source, {}, tmp_path / "store")
    agent = boot_agent(launch_request(as_bundle(packed.path, packed.digest)), packed.path.as_uri())
    agent.wait_for(WAITING)
    assert (agent.workdir / "start.sh").read_text() == "echo packed\n"
    assert os.access(agent.workdir / "lib" / "run.sh", os.X_OK)


def test_a_digest_mismatch_fails_the_boot(boot_agent: Boot, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "b.tar.gz", workdir={"a": b"a"})
    agent = boot_agent(launch_request(as_bundle(bundle.path, "0" * 64)), bundle.url)
    status = agent.wait_for(FAILED, WAITING)
    assert status.phase == FAILED and "digest mismatch" in status.detail
    assert bundle.digest in status.detail
    assert not (agent.workdir / "a").exists()


def test_a_missing_bundle_fails_the_boot_with_the_reason(boot_agent: Boot, tmp_path: Path) -> None:
    gone = tmp_path / "gone.tar.gz"
    agent = boot_agent(launch_request(as_bundle(gone, "0" * 64)), gone.as_uri())
    status = agent.wait_for(FAILED, WAITING)
    assert status.phase == FAILED and "cannot fetch the bundle" in status.detail


HOSTILE = {
    "parent traversal": [Raw("workdir/../../escaped")],
    "absolute name": [Raw("/tmp/spotserve-agent-test-escaped")],
    "link pointing outside": [Raw("workdir/out", tarfile.SYMTYPE, linkname="../../..")],
    "absolute link": [Raw("workdir/etc", tarfile.SYMTYPE, linkname="/etc")],
    # x points inside when made, but outside once y is replaced: writing through x is refused
    "write through a link": [
        Raw("workdir/a/b", tarfile.DIRTYPE),
        Raw("workdir/y", tarfile.SYMTYPE, linkname="a/b"),
        Raw("workdir/x", tarfile.SYMTYPE, linkname="y/../.."),
        Raw("workdir/y", tarfile.SYMTYPE, linkname="."),
        Raw("workdir/x/escaped"),
    ],
    "device file": [Raw("workdir/dev", tarfile.CHRTYPE)],
    "entry outside the layout": [Raw("elsewhere/file")],
    "mount index not in the manifest": [Raw("mounts/7")],
}


@pytest.mark.parametrize("entries", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_bundle_is_refused(boot_agent: Boot, tmp_path: Path, entries: list[Raw]) -> None:
    bundle = write_bundle(tmp_path / "b.tar.gz", workdir={"ok.txt": b"ok"}, raw=entries)
    agent = boot_agent(launch_request(as_bundle(bundle.path, bundle.digest)), bundle.url)
    status = agent.wait_for(FAILED, WAITING)
    assert status.phase == FAILED and "cannot unpack the bundle" in status.detail
    assert not (agent.root / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert not Path("/tmp/spotserve-agent-test-escaped").exists()


def test_without_openssl_the_agent_does_not_start_and_says_to_install_it(
    boot_agent: Boot, tmp_path: Path
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("mkdir", "chmod", "touch", "dirname", "tee", "cat"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    agent = boot_agent(launch_request(), path=str(tools))
    assert agent.process.wait(timeout=30) == 1
    deadline = time.monotonic() + 10  # tee may still be writing
    while "openssl is not installed" not in agent.log.read_text():
        assert time.monotonic() < deadline, agent.log.read_text()
        time.sleep(0.05)
    assert '"failed"' in agent.log.read_text()


def test_the_agents_files_are_readable_by_their_owner_only(boot_agent: Boot) -> None:
    agent = boot_agent(launch_request())
    agent.wait_for(WAITING)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(agent.directory) == 0o700
    assert mode(agent.directory / "config.json") == 0o600
    assert mode(agent.directory / "tls" / "key.pem") == 0o600


def test_an_agent_directory_that_cannot_be_made_falls_back_to_home(boot_agent: Boot) -> None:
    agent = boot_agent(launch_request(), env={"SERVE_AGENT_DIR": "/dev/null/spotserve"})
    agent.wait_for(WAITING)
    assert (agent.home / ".spotserve" / "config.json").exists()


def test_a_replica_log_that_cannot_be_written_moves_into_the_agent_directory(
    boot_agent: Boot,
) -> None:
    agent = boot_agent(launch_request(), env={"SERVE_REPLICA_LOG": "/dev/null/replica.log"})
    agent.wait_for(WAITING)
    log = agent.directory / "replica.log"
    deadline = time.monotonic() + 10
    while b"waiting_for_job" not in log.read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert agent.trusted().logs(0, 1 << 20) == (log.read_bytes(), log.stat().st_size)


def test_without_a_token_the_agent_does_not_start(boot_agent: Boot) -> None:
    agent = boot_agent(launch_request(agent_token=""))
    assert agent.process.wait(timeout=30) == 1
    deadline = time.monotonic() + 10  # tee may still be writing
    while "needs a token" not in agent.log.read_text():
        assert time.monotonic() < deadline, agent.log.read_text()
        time.sleep(0.05)
