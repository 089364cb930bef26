"""Reading `usage` off OpenAI-compatible answers, as vLLM and OpenAI send them.

Shapes from the OpenAI API reference (chat completion object; chat completion chunk with
`stream_options: {"include_usage": true}`: a last chunk with empty `choices` and `usage`, every
other chunk `"usage": null`) and vLLM's `continuous_usage_stats` (running totals in every
chunk).
"""

from __future__ import annotations

import json

import pytest

from load_balancer.usage import TAIL_BYTES, UsageMeter

JSON = [(b"content-type", b"application/json")]
SSE = [(b"content-type", b"text/event-stream; charset=utf-8")]


def _read(body: bytes, headers: list[tuple[bytes, bytes]] = JSON, pieces: int = 7) -> object:
    meter = UsageMeter.for_request(b"POST", b"/v1/chat/completions")
    assert meter is not None
    if not meter.start(200, headers):
        return "not metered"
    step = max(1, len(body) // pieces)
    for at in range(0, len(body), step):
        meter.feed(body[at : at + step])
    return meter.tokens()


def _chat(content: str, prompt: int, completion: int) -> bytes:
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }
    return json.dumps(answer).encode()


def _events(*chunks: object) -> bytes:
    out = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return out + b"data: [DONE]\n\n"


def _chunk(text: str, usage: object = None) -> dict[str, object]:
    choices = [{"index": 0, "delta": {"content": text}}] if text else []
    return {"object": "chat.completion.chunk", "choices": choices, "usage": usage}


def test_a_json_answer_gives_its_prompt_and_completion_tokens() -> None:
    assert _read(_chat("Hello there", 12, 3)) == (12, 3)


def test_an_answer_larger_than_the_tail_is_read_from_its_last_usage_key() -> None:
    content = 'a "usage": {"prompt_tokens": 1} inside the text ' + "x" * (3 * TAIL_BYTES)
    assert _read(_chat(content, 40, 9000), pieces=50) == (40, 9000)


def test_a_stream_gives_the_usage_of_its_final_chunk() -> None:
    body = _events(
        _chunk("Hel"), _chunk("lo"), _chunk("", {"prompt_tokens": 5, "completion_tokens": 2})
    )
    assert _read(body, SSE) == (5, 2)


def test_running_totals_in_every_chunk_count_once_at_their_last_value() -> None:
    chunks = [
        _chunk(t, {"prompt_tokens": 5, "completion_tokens": n}) for n, t in enumerate("abc", 1)
    ]
    assert _read(_events(*chunks), SSE) == (5, 3)


def test_a_stream_without_include_usage_reports_nothing() -> None:
    assert _read(_events(_chunk("Hel"), _chunk("lo")), SSE) is None


def test_embeddings_have_no_completion_tokens() -> None:
    body = json.dumps({"data": [], "usage": {"prompt_tokens": 8, "total_tokens": 8}}).encode()
    assert _read(body) == (8, 0)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -1, "completion_tokens": 2},
        {"prompt_tokens": 10**12, "completion_tokens": 2},
        {"prompt_tokens": "5", "completion_tokens": 2},
        {"prompt_tokens": True, "completion_tokens": 2},
        {"completion_tokens": 2},
        None,
    ],
)
def test_figures_that_are_not_token_counts_are_not_counted(usage: object) -> None:
    body = json.dumps({"choices": [], "usage": usage}).encode()
    assert _read(body) is None


def test_an_encoded_answer_is_not_read() -> None:
    headers = [*JSON, (b"Content-Encoding", b"gzip")]
    assert _read(_chat("x", 1, 1), headers) == "not metered"


def test_an_error_answer_is_not_read() -> None:
    meter = UsageMeter.for_request(b"POST", b"/v1/completions")
    assert meter is not None and not meter.start(500, JSON)


def test_a_body_that_is_not_json_gives_nothing() -> None:
    assert _read(b"<html>oops</html>") is None


@pytest.mark.parametrize(
    ("method", "target", "metered"),
    [
        (b"POST", b"/v1/chat/completions", True),
        (b"POST", b"/v1/completions?x=1", True),
        (b"POST", b"/v1/embeddings/", True),
        (b"POST", b"http://example.com/v1/chat/completions", True),
        (b"GET", b"/v1/chat/completions", False),
        (b"POST", b"/v1/models", False),
        (b"POST", b"/generate", False),
    ],
)
def test_only_posts_to_openai_paths_are_metered(
    method: bytes, target: bytes, metered: bool
) -> None:
    assert (UsageMeter.for_request(method, target) is not None) == metered
