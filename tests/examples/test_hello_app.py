"""`examples/hello/app.py` answers like a greedy model: a pure function of the context.

Two real replica processes over HTTP. What the load balancer's stream resume relies on: the
reply does not depend on the replica, and continuing from any token-boundary prefix of a reply
(chat: `continue_final_message`; completions: `prompt + partial`) yields exactly the rest.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

APP = Path(__file__).resolve().parents[2] / "examples" / "hello" / "app.py"
QUESTION = [{"role": "user", "content": "what are spot GPUs good for?"}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(replica_id: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "SERVE_REPLICA_ID": replica_id, "SERVE_REPLICA_PORT": str(port)}
    env["HELLO_TOKEN_DELAY"] = "0"
    process = subprocess.Popen([sys.executable, str(APP)], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.02)
    process.kill()
    raise AssertionError("hello replica did not start")


@pytest.fixture(scope="module")
def replicas() -> Iterator[tuple[str, str]]:
    started = [_start("1"), _start("2")]
    yield started[0][1], started[1][1]
    for process, _ in started:
        process.kill()
        process.wait(5)


def _post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(url + path, json=body, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _chat_text(url: str, body: dict[str, Any]) -> str:
    return str(_post(url, "/v1/chat/completions", body)["choices"][0]["message"]["content"])


def _stream(url: str, path: str, body: dict[str, Any]) -> list[str]:
    with httpx.stream("POST", url + path, json={**body, "stream": True}, timeout=10) as response:
        assert response.headers["content-type"] == "text/event-stream"
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def _streamed_tokens(url: str, path: str, body: dict[str, Any]) -> list[str]:
    """The reply's tokens as the replica streams them, one per event."""
    pieces = []
    for event in _stream(url, path, body)[:-1]:
        choice = json.loads(event)["choices"][0]
        pieces.append(choice["delta"].get("content") if "delta" in choice else choice["text"])
    return [piece for piece in pieces if piece]


def test_the_reply_depends_on_the_prompt_not_on_the_replica(replicas: tuple[str, str]) -> None:
    one, two = (_post(url, "/v1/chat/completions", {"messages": QUESTION}) for url in replicas)
    assert one["choices"] == two["choices"] and one["usage"] == two["usage"]
    assert one["system_fingerprint"] == "replica-1" and two["system_fingerprint"] == "replica-2"
    assert one["choices"][0]["message"]["content"].startswith(
        "Hello! You said: what are spot GPUs good for? "
    )


def test_chat_continued_from_any_token_boundary_gives_exactly_the_rest(
    replicas: tuple[str, str],
) -> None:
    first, second = replicas
    full = _chat_text(first, {"messages": QUESTION})
    tokens = _streamed_tokens(first, "/v1/chat/completions", {"messages": QUESTION})
    assert "".join(tokens) == full
    assert 12 <= len(tokens) <= 30
    for cut in range(len(tokens)):
        partial = "".join(tokens[:cut])
        body = {
            "messages": [*QUESTION, {"role": "assistant", "content": partial}],
            "continue_final_message": True,
            "add_generation_prompt": False,
        }
        assert partial + _chat_text(second, body) == full, f"cut after {cut} tokens"


def test_completion_continued_from_prompt_plus_partial_gives_exactly_the_rest(
    replicas: tuple[str, str],
) -> None:
    first, second = replicas
    prompt = "Once upon a time"
    full = str(_post(first, "/v1/completions", {"prompt": prompt})["choices"][0]["text"])
    tokens = _streamed_tokens(first, "/v1/completions", {"prompt": prompt})
    assert "".join(tokens) == full and tokens[0].startswith(" ")
    for cut in range(len(tokens)):
        partial = "".join(tokens[:cut])
        rest = _post(second, "/v1/completions", {"prompt": prompt + partial})
        assert partial + rest["choices"][0]["text"] == full, f"cut after {cut} tokens"


def test_a_stream_has_one_token_per_event_usage_last_and_done(
    replicas: tuple[str, str],
) -> None:
    body = {"messages": QUESTION, "max_tokens": 5, "stream_options": {"include_usage": True}}
    events = _stream(replicas[0], "/v1/chat/completions", body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks[1:6]) == (
        "Hello! You said: what are "
    )
    assert chunks[6]["choices"][0]["finish_reason"] == "length"
    assert chunks[7]["choices"] == [] and chunks[7]["usage"]["completion_tokens"] == 5
    assert len({c["id"] for c in chunks}) == 1


def test_a_streamed_completion_sends_the_text_in_choices_text(
    replicas: tuple[str, str],
) -> None:
    events = _stream(replicas[0], "/v1/completions", {"prompt": "Once upon a time"})
    whole = _post(replicas[0], "/v1/completions", {"prompt": "Once upon a time"})
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and events[-1] == "[DONE]"
