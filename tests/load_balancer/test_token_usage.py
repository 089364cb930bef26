"""Tokens the load balancer reads off real OpenAI answers and reports with its sync.

Real processes: the load balancer (two workers, so the counters cross processes) in front of
two `examples/hello/app.py` replicas, following a fake controller that records each sync. The
client reads `usage` as the openai package does; what the controller hears must add up to
exactly that, per replica, each token once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import openai

from tests.load_balancer.conftest import Proc, ProcessFactory, wait_until
from tests.load_balancer.servers import FakeController

QUESTION = [{"role": "user", "content": "what does a spot GPU cost per million tokens?"}]


def _reported(controller: FakeController) -> Counter[tuple[str, str]]:
    """(replica URL, kind) -> tokens, over every sync the controller accepted."""
    sums: Counter[tuple[str, str]] = Counter()
    for body in list(controller.accepted):
        for url, (prompt, completion) in body.get("tokens", {}).items():
            sums[(url, "prompt")] += prompt
            sums[(url, "completion")] += completion
    return sums


def _metric(lb: Proc, kind: str) -> float:
    for line in httpx.get(lb.url + "/-/metrics").text.splitlines():
        if line.startswith("lb_tokens_total{") and f'kind="{kind}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("lb_tokens_total missing")


def test_the_usage_of_every_answer_reaches_the_controller_once_per_replica(
    procs: ProcessFactory, controller: FakeController, token_file: Path
) -> None:
    one, two = procs.hello("1", token_delay=0.0), procs.hello("2", token_delay=0.0)
    url_of = {"1": one.url, "2": two.url}
    controller.ready_replicas = [one.url, two.url]
    flags = ["--controller-url", controller.start(), "--service", "svc"]
    lb = procs.lb(
        *flags,
        "--token-file",
        str(token_file),
        "--sync-interval",
        "0.2",
        "--workers",
        "2",
        "--policy",
        "round_robin",
        wait_ready=2,
    )
    client = openai.OpenAI(base_url=lb.url + "/v1", api_key="unused", max_retries=0)
    expected: Counter[tuple[str, str]] = Counter()

    def count(replica: str, usage: openai.types.CompletionUsage) -> None:
        expected[(url_of[replica], "prompt")] += usage.prompt_tokens
        expected[(url_of[replica], "completion")] += usage.completion_tokens

    for n in range(4):
        raw = client.chat.completions.with_raw_response.create(
            model="hello-1", messages=QUESTION, max_tokens=5 + n
        )
        answer = raw.parse()
        assert answer.usage is not None
        count(raw.headers["x-replica-id"], answer.usage)
    for n in range(3):
        with client.chat.completions.with_streaming_response.create(
            model="hello-1",
            messages=QUESTION,
            stream=True,
            max_tokens=8 + n,
            stream_options={"include_usage": True},
        ) as response:
            chunks = list(response.parse())
            usage = chunks[-1].usage
            assert usage is not None and chunks[-1].choices == []
            count(response.headers["x-replica-id"], usage)
    unmetered = client.chat.completions.create(model="hello-1", messages=QUESTION, stream=True)
    assert all(chunk.usage is None for chunk in unmetered)
    completion = httpx.post(lb.url + "/v1/completions", json={"model": "hello-1", "prompt": "Once"})
    count(
        completion.headers["x-replica-id"],
        openai.types.CompletionUsage(**completion.json()["usage"]),
    )
    assert {url for url, _ in expected} == {one.url, two.url}

    try:
        wait_until(lambda: _reported(controller) == expected, "every token reported", timeout=30)
    except AssertionError:
        raise AssertionError(f"reported {_reported(controller)}, expected {expected}") from None
    assert _metric(lb, "prompt") == sum(v for (_, kind), v in expected.items() if kind == "prompt")
    assert _metric(lb, "completion") == sum(
        v for (_, kind), v in expected.items() if kind == "completion"
    )
    later = len(controller.accepted)
    wait_until(lambda: len(controller.accepted) >= later + 3, "three more syncs")
    assert _reported(controller) == expected, "a token was reported twice"


def test_a_replica_that_left_the_ready_list_keeps_its_tokens(
    procs: ProcessFactory, controller: FakeController, token_file: Path
) -> None:
    """An answer that ends after its replica was dropped still counts for that replica."""
    slow, fast = procs.hello("1", token_delay=0.2), procs.hello("2", token_delay=0.0)
    controller.ready_replicas = [slow.url]
    flags = ["--controller-url", controller.start(), "--service", "svc"]
    lb = procs.lb(*flags, "--token-file", str(token_file), "--sync-interval", "0.2", wait_ready=1)
    body = {
        "model": "hello-1",
        "messages": QUESTION,
        "stream": True,
        "max_tokens": 12,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", lb.url + "/v1/chat/completions", json=body, timeout=30) as stream:
        lines = stream.iter_lines()
        next(line for line in lines if line.startswith("data:"))
        controller.ready_replicas = [fast.url]
        synced = len(controller.accepted)
        wait_until(lambda: len(controller.accepted) >= synced + 2, "the drop applied")
        events = [line[5:].strip() for line in lines if line.startswith("data:")]
    usage = json.loads(events[-2])["usage"]
    wanted = Counter(
        {
            (slow.url, "prompt"): usage["prompt_tokens"],
            (slow.url, "completion"): usage["completion_tokens"],
        }
    )
    wait_until(lambda: _reported(controller) == wanted, "the dropped replica's tokens", timeout=30)
