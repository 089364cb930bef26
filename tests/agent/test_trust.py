"""Who may talk to an agent: the hello proof binds the token to the TLS certificate, the
client pins that certificate, and every other endpoint wants the bearer token."""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl

import pytest

from replica_manager.agent_client import (
    AgentClient,
    AgentPhase,
    AgentRefused,
    AgentUntrusted,
)
from tests.agent.conftest import Boot
from tests.agent.harness import BootedAgent, job_for, launch_request


def certificate_sha256(agent: BootedAgent) -> str:
    pem = (agent.directory / "tls" / "cert.pem").read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def test_hello_proof_verifies_for_the_agents_own_certificate(boot_agent: Boot) -> None:
    agent = boot_agent(launch_request())
    agent.wait_for(AgentPhase.WAITING_FOR_JOB)
    assert agent.client().hello() == certificate_sha256(agent)


def test_a_pinned_client_talks_to_the_agent_without_another_hello(boot_agent: Boot) -> None:
    agent = boot_agent(launch_request())
    pin = agent.trusted().hello()
    assert agent.client(pinned=pin).status().phase == AgentPhase.WAITING_FOR_JOB


def test_an_agent_with_another_token_fails_the_proof(boot_agent: Boot) -> None:
    agent = boot_agent(launch_request())
    agent.wait_for(AgentPhase.WAITING_FOR_JOB)
    with pytest.raises(AgentUntrusted, match="could not prove"):
        agent.client(token="not-the-token").hello()


def test_a_certificate_other_than_the_pinned_one_is_refused(boot_agent: Boot) -> None:
    """A man in the middle, even one holding the token, shows another certificate."""
    request = launch_request()
    real, impostor = boot_agent(request), boot_agent(request)
    pin = real.trusted().hello()
    impostor.wait_for(AgentPhase.WAITING_FOR_JOB)
    misdirected = AgentClient(impostor.url, request.agent_token, pin, timeout=5)
    with pytest.raises(AgentUntrusted, match="not the pinned"):
        misdirected.send_job(job_for(request))
    with pytest.raises(AgentUntrusted, match="not the pinned"):
        misdirected.hello()


def test_an_unpinned_client_sends_nothing_that_carries_the_token(boot_agent: Boot) -> None:
    agent = boot_agent(launch_request())
    with pytest.raises(AgentUntrusted, match="call hello"):
        agent.client().send_job(job_for(agent.request))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/status"),
        ("GET", "/v1/logs?offset=0"),
        ("GET", "/v1/notice"),
        ("PUT", "/v1/job"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic Zm9vOmJhcg=="])
def test_requests_without_the_token_get_401(
    boot_agent: Boot, method: str, path: str, authorization: str | None
) -> None:
    agent = boot_agent(launch_request())
    agent.wait_for(AgentPhase.WAITING_FOR_JOB)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    host, port = agent.url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
    headers = {"Authorization": authorization} if authorization else {}
    body = json.dumps(job_for(agent.request)) if method == "PUT" else None
    conn.request(method, path, body=body, headers=headers)
    reply = conn.getresponse()
    assert reply.status == 401
    assert json.loads(reply.read())["error"] == "a valid bearer token is required"
    assert agent.wait_for(AgentPhase.WAITING_FOR_JOB), "the job was not taken"


def test_the_client_reports_a_refused_token_as_401(boot_agent: Boot) -> None:
    agent = boot_agent(launch_request())
    pin = agent.trusted().hello()
    with pytest.raises(AgentRefused) as refused:
        agent.client(token="wrong", pinned=pin).status()
    assert refused.value.status == 401 and "refused our token" in str(refused.value)
