"""Preemption notices: the agent watches its cloud's instance metadata (SERVE_METADATA_URL
points it at a fake that refuses what the real services refuse) and reports what it saw."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from replica_manager.agent_client import AgentPhase
from tests.agent.conftest import Boot
from tests.agent.harness import launch_request
from tests.agent.metadata_fake import MetadataFake


@pytest.fixture
def metadata() -> Iterator[MetadataFake]:
    fake = MetadataFake().start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_preemption_in_the_metadata_is_reported_as_the_notice(
    boot_agent: Boot, metadata: MetadataFake, cloud: str
) -> None:
    metadata.preempted = True
    agent = boot_agent(launch_request(), cloud=cloud, env={"SERVE_METADATA_URL": metadata.url})
    client = agent.trusted()
    deadline = time.monotonic() + 15
    while (notice := client.notice()) is None:
        assert time.monotonic() < deadline, agent.log.read_text()
        time.sleep(0.05)
    assert notice["kind"] == "preemption" and notice["cloud"] == cloud
    assert notice["detail"]
    lead = notice["deadline"] - notice["seen_at"]
    if cloud == "gcp":  # GCE's flag does not say when: its documented 30 s
        assert lead == 30.0
    else:  # the fake's AWS `time` and Azure `NotBefore` lie in 2030
        assert notice["deadline"] > 1.8e9


def test_no_notice_while_the_cloud_has_none_then_the_notice_once_it_has(
    boot_agent: Boot, metadata: MetadataFake
) -> None:
    agent = boot_agent(launch_request(), cloud="aws", env={"SERVE_METADATA_URL": metadata.url})
    client = agent.trusted()
    deadline = time.monotonic() + 15
    while not metadata.tokens:
        assert time.monotonic() < deadline, "the agent never asked for an IMDSv2 token"
        time.sleep(0.05)
    assert client.notice() is None
    metadata.preempted = True
    while (notice := client.notice()) is None:
        assert time.monotonic() < deadline, agent.log.read_text()
        time.sleep(0.05)
    assert notice["detail"] == {"action": "terminate", "time": "2030-01-01T00:02:00Z"}
    status = client.status()
    assert status.phase == AgentPhase.WAITING_FOR_JOB
    assert status.notice is not None, "the status the controller reads each tick carries it"
    assert status.notice.deadline == 1893456120.0  # 2030-01-01T00:02:00Z, AWS's `time`


def test_a_local_replica_has_no_notice(boot_agent: Boot) -> None:
    agent = boot_agent(launch_request(), cloud="local")
    assert agent.trusted().notice() is None
