"""A streamed OpenAI answer cut by a dying replica continues on another one.

Real processes: the load balancer in front of two `examples/hello/app.py` replicas, whose
answer is a pure function of the prompt. Replica 1 (round robin's first pick) streams slowly
and is killed with its process group after a few events; replica 2 answers at full speed.
Each test waits on events it has read, never on time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.load_balancer.conftest import Proc, ProcessFactory, free_port, wait_until
from tests.load_balancer.servers import FakeController

CHAT_PATH, COMPLETIONS_PATH = "/v1/chat/completions", "/v1/completions"
QUESTION = [
    {"role": "user", "content": "how does a load balancer keep a token stream alive on spot?"}
]
CHAT = {"model": "hello-1", "messages": QUESTION, "stream": True}
COMPLETION = {"model": "hello-1", "prompt": "Once upon a time", "stream": True}
VARYING = ("id", "created", "system_fingerprint")


def _replicas(procs: ProcessFactory) -> tuple[Proc, Proc]:
    return procs.hello("1", token_delay=0.05), procs.hello("2", token_delay=0.0)


def _lb(procs: ProcessFactory, urls: list[str], *flags: str) -> Proc:
    return procs.lb("--replicas", ",".join(urls), "--policy", "round_robin", *flags)


def _is_content(event: str) -> bool:
    if event == "[DONE]":
        return False
    choices = json.loads(event).get("choices") or [{}]
    piece = choices[0].get("delta", {}).get("content") or choices[0].get("text")
    return bool(piece)


def _stream_killing(url: str, path: str, body: dict[str, Any], victim: Proc) -> list[str]:
    """POST a streamed request and kill ``victim`` once three content events arrived; return
    every event's data as received."""
    events: list[str] = []
    with httpx.stream("POST", url + path, json=body, timeout=10) as response:
        assert response.headers["x-replica-id"] == "1"
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: "):
                events.append(line[6:])
                if sum(map(_is_content, events)) == 3:
                    victim.kill_group()
                    break
        events += [line[6:] for line in lines if line.startswith("data: ")]
    return events


def _uninterrupted(url: str, path: str, body: dict[str, Any]) -> list[str]:
    with httpx.stream("POST", url + path, json=body, timeout=10) as response:
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def _without_varying(events: list[str]) -> list[Any]:
    parsed = [event if event == "[DONE]" else json.loads(event) for event in events]
    return [
        e if e == "[DONE]" else {k: v for k, v in e.items() if k not in VARYING} for e in parsed
    ]


def _metric(lb: Proc, name: str, **labels: str) -> float:
    for line in httpx.get(lb.url + "/-/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in /-/metrics")


def _assert_resumed_as_if_uninterrupted(resumed: list[str], reference: list[str]) -> None:
    assert _without_varying(resumed) == _without_varying(reference)
    assert resumed.count("[DONE]") == 1 and resumed[-1] == "[DONE]"
    ids = {json.loads(event)["id"] for event in resumed[:-1]}
    assert len(ids) == 1, f"every event keeps the original id, got {ids}"
    assert json.loads(resumed[0])["system_fingerprint"] == "replica-1"


def test_a_chat_stream_cut_by_a_killed_replica_ends_as_if_never_cut(
    procs: ProcessFactory,
) -> None:
    first, second = _replicas(procs)
    lb = _lb(procs, [first.url, second.url], "--resume-streams")
    body = {**CHAT, "stream_options": {"include_usage": True}}
    resumed = _stream_killing(lb.url, CHAT_PATH, body, first)
    _assert_resumed_as_if_uninterrupted(resumed, _uninterrupted(second.url, CHAT_PATH, body))
    assert json.loads(resumed[-2])["usage"]["completion_tokens"] == sum(map(_is_content, resumed))
    assert _metric(lb, "lb_stream_resumes_total") == 1
    assert _metric(lb, "lb_stream_resume_gap_seconds_count") == 1
    assert _metric(lb, "lb_stream_resume_failures_total") == 0


def test_a_completions_stream_cut_by_a_killed_replica_ends_as_if_never_cut(
    procs: ProcessFactory,
) -> None:
    first, second = _replicas(procs)
    lb = _lb(procs, [first.url, second.url], "--resume-streams")
    resumed = _stream_killing(lb.url, COMPLETIONS_PATH, COMPLETION, first)
    reference = _uninterrupted(second.url, COMPLETIONS_PATH, COMPLETION)
    _assert_resumed_as_if_uninterrupted(resumed, reference)


def test_the_openai_client_reads_a_resumed_stream_as_one_answer(procs: ProcessFactory) -> None:
    first, second = _replicas(procs)
    lb = _lb(procs, [first.url, second.url], "--resume-streams")
    client = openai.OpenAI(base_url=lb.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="hello-1", messages=QUESTION, stream=True)
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) == 3:
            first.kill_group()
    direct = openai.OpenAI(base_url=second.url + "/v1", api_key="unused", max_retries=0)
    reference = list(
        direct.chat.completions.create(model="hello-1", messages=QUESTION, stream=True)
    )
    assert [c.choices[0].delta.content for c in chunks] == [
        c.choices[0].delta.content for c in reference
    ]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.id for c in chunks} == {chunks[0].id}


def test_a_stream_cut_after_its_last_allowed_token_just_ends_with_done(
    procs: ProcessFactory,
) -> None:
    first, second = procs.hello("1", token_delay=0.3), procs.hello("2", token_delay=0.0)
    lb = _lb(procs, [first.url, second.url], "--resume-streams")
    events = _stream_killing(lb.url, CHAT_PATH, {**CHAT, "max_tokens": 3}, first)
    assert sum(map(_is_content, events)) == 3 and events[-1] == "[DONE]"
    assert _metric(lb, "lb_stream_resumes_total") == 0
    assert _metric(lb, "lb_stream_resume_failures_total") == 0


def test_a_client_that_leaves_during_a_continuation_releases_it(procs: ProcessFactory) -> None:
    first, second = procs.hello("1", token_delay=0.05), procs.hello("2", token_delay=0.05)
    lb = _lb(procs, [first.url, second.url], "--resume-streams")
    with httpx.stream("POST", lb.url + CHAT_PATH, json=CHAT, timeout=10) as response:
        events = []
        for line in response.iter_lines():
            events += [line[6:]] if line.startswith("data: ") else []
            if sum(map(_is_content, events)) == 3 and first.process.poll() is None:
                first.kill_group()
            if sum(map(_is_content, events)) == 5:
                assert json.loads(events[-1])["system_fingerprint"] == "replica-2"
                break
    wait_until(lambda: _metric(lb, "lb_errors_total", kind="client_disconnected") == 1, "seen")
    wait_until(lambda: _metric(lb, "lb_replica_in_flight", replica=second.url) == 0, "released")
    assert _uninterrupted(lb.url, CHAT_PATH, CHAT)[-1] == "[DONE]"


def test_a_continuation_answered_with_an_error_ends_the_stream_with_an_error_event(
    procs: ProcessFactory,
) -> None:
    first, failing = procs.hello("1", token_delay=0.05), procs.backend("F")
    lb = _lb(procs, [first.url, failing.url], "--resume-streams")
    events = _stream_killing(lb.url, CHAT_PATH, CHAT, first)
    error = json.loads(events[-1])["error"]
    assert error["type"] == "stream_resume_failed"
    assert "answered 500" in error["message"] and failing.url in error["message"]
    assert "[DONE]" not in events
    assert _metric(lb, "lb_stream_resume_failures_total") == 1


def test_with_resume_off_the_same_kill_cuts_the_stream_as_before(procs: ProcessFactory) -> None:
    first, second = _replicas(procs)
    lb = _lb(procs, [first.url, second.url])
    with pytest.raises(httpx.TransportError):
        _stream_killing(lb.url, CHAT_PATH, CHAT, first)
    assert _metric(lb, "lb_stream_resumes_total") == 0


def test_a_request_for_two_choices_is_cut_as_before(procs: ProcessFactory) -> None:
    first, second = _replicas(procs)
    lb = _lb(procs, [first.url, second.url], "--resume-streams")
    with pytest.raises(httpx.TransportError):
        _stream_killing(lb.url, CHAT_PATH, {**CHAT, "n": 2}, first)
    assert _metric(lb, "lb_stream_resumes_total") == 0


def test_a_stream_on_another_path_is_cut_as_before(procs: ProcessFactory) -> None:
    backend, spare = procs.backend("C"), procs.backend("D")
    lb = _lb(procs, [backend.url, spare.url], "--resume-streams")
    with (
        pytest.raises(httpx.TransportError),
        httpx.stream("POST", lb.url + "/sse?n=3", json=CHAT, timeout=10) as response,
    ):
        lines = response.iter_lines()
        assert next(line for line in lines if line) == "data: token-0"
        backend.kill()
        list(lines)
    assert _metric(lb, "lb_stream_resumes_total") == 0


def test_the_controller_turns_resume_on_for_every_worker(
    procs: ProcessFactory, controller: FakeController, token_file: Path
) -> None:
    first, second = _replicas(procs)
    controller.ready_replicas = [first.url, second.url]
    controller.resume_streams = True
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token_file)]
    flags += ["--sync-interval", "0.1", "--workers", "2", "--policy", "round_robin"]
    lb = procs.lb(*flags)
    seen: list[bool] = []

    def every_worker_resumes() -> bool:
        health = httpx.get(lb.url + "/-/healthz", timeout=5).json()
        seen.append(health["resume_streams"] and health["ready_replicas"] == 2)
        return seen[-8:] == [True] * 8

    wait_until(every_worker_resumes, "the setting on every worker")
    resumed = _stream_killing(lb.url, CHAT_PATH, CHAT, first)
    _assert_resumed_as_if_uninterrupted(resumed, _uninterrupted(second.url, CHAT_PATH, CHAT))


def test_resume_stays_as_it_was_when_a_sync_answer_leaves_it_out(
    procs: ProcessFactory, controller: FakeController, token_file: Path
) -> None:
    controller.resume_streams = True
    url = controller.start()
    flags = ["--controller-url", url, "--service", "svc", "--token-file", str(token_file)]
    lb = procs.lb(*flags, "--sync-interval", "0.1")

    def resume_on() -> bool:
        return bool(httpx.get(lb.url + "/-/healthz", timeout=5).json()["resume_streams"])

    wait_until(resume_on, "resume turned on")
    controller.resume_streams = None
    syncs = len(controller.syncs)
    wait_until(lambda: len(controller.syncs) > syncs + 1, "two more syncs")
    assert resume_on()
    controller.resume_streams = False
    wait_until(lambda: not resume_on(), "resume turned off")


def test_a_replica_that_does_not_answer_costs_the_stream_no_resume(
    procs: ProcessFactory,
) -> None:
    """A zone taken at once kills two replicas: the continuation finds the second dead too,
    and goes on to the third even with one resume allowed."""
    first, second = _replicas(procs)
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens: a VM already taken
    lb = _lb(procs, [first.url, gone, second.url], "--resume-streams", "--max-resumes", "1")
    resumed = _stream_killing(lb.url, CHAT_PATH, CHAT, first)
    _assert_resumed_as_if_uninterrupted(resumed, _uninterrupted(second.url, CHAT_PATH, CHAT))
    assert _metric(lb, "lb_stream_resume_failures_total") == 0
