"""The pure half of stream resume: SSE events, what is tracked, and the continuation built."""

from __future__ import annotations

import json
from typing import Any

from load_balancer.sse import SseSplitter, event_data
from load_balancer.stream_resume import (
    Kind,
    ResumableRequest,
    continuation_body,
    is_event_stream,
    resumable_kind,
)
from load_balancer.stream_tracker import StreamTracker

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def _event(chunk: dict[str, Any] | str) -> bytes:
    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
    return f"data: {data}\n\n".encode()


def _chat_chunk(delta: dict[str, Any], finish: str | None = None, ident: str = "c-1") -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _event({"id": ident, "object": "chat.completion.chunk", "choices": [choice]})


def _text_chunk(text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "text": text, "finish_reason": finish}
    return _event({"id": "cmpl-1", "object": "text_completion", "choices": [choice]})


def _parse(kind: Kind, body: dict[str, Any]) -> ResumableRequest | None:
    return ResumableRequest.parse(kind, json.dumps(body).encode())


def _data(out: bytes) -> list[Any]:
    events = SseSplitter().feed(out)
    return [d if d == b"[DONE]" else json.loads(d) for e in events if (d := event_data(e))]


def test_splitter_hands_out_only_whole_events_across_reads() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"data: one\n\ndata: tw") == [b"data: one\n\n"]
    assert splitter.feed(b"o\r\n\r\n: ping\n\n") == [b"data: two\r\n\r\n", b": ping\n\n"]
    assert splitter.feed(b"data: [DO") == [] and splitter.take_pending() == b"data: [DO"


def test_splitter_cuts_lf_and_crlf_events_of_one_read_in_order() -> None:
    read = b"data: a\n\ndata: b\r\n\r\ndata: c\n\ndata: d\r\n\r\ndata: e"
    assert SseSplitter().feed(read) == [
        b"data: a\n\n",
        b"data: b\r\n\r\n",
        b"data: c\n\n",
        b"data: d\r\n\r\n",
    ]


def test_event_data_joins_data_lines_and_ignores_comments() -> None:
    assert event_data(b"event: x\ndata: a\ndata:b\n\n") == b"a\nb"
    assert event_data(b": keep-alive\n\n") is None


def test_only_openai_streaming_posts_are_candidates() -> None:
    assert resumable_kind(b"POST", b"/v1/chat/completions?x=1") is Kind.CHAT
    assert resumable_kind(b"POST", b"/v1/completions") is Kind.COMPLETIONS
    assert resumable_kind(b"GET", b"/v1/completions") is None
    assert resumable_kind(b"POST", b"/v1/embeddings") is None


def test_only_an_uncompressed_event_stream_is_tracked() -> None:
    assert is_event_stream([(b"Content-Type", b"text/event-stream; charset=utf-8")])
    assert not is_event_stream([(b"content-type", b"application/json")])
    gzipped = [(b"content-type", b"text/event-stream"), (b"content-encoding", b"gzip")]
    assert not is_event_stream(gzipped)


def test_requests_that_cannot_be_resumed_safely_are_refused() -> None:
    assert _parse(Kind.CHAT, CHAT) is not None
    assert _parse(Kind.CHAT, {**CHAT, "n": 1}) is not None
    assert _parse(Kind.CHAT, {**CHAT, "n": 2}) is None
    assert _parse(Kind.CHAT, {**CHAT, "stream": False}) is None
    assert _parse(Kind.CHAT, {**CHAT, "messages": []}) is None
    assert _parse(Kind.COMPLETIONS, {"prompt": ["a", "b"], "stream": True}) is None
    assert _parse(Kind.COMPLETIONS, {"prompt": "a", "stream": True, "echo": True}) is None
    assert ResumableRequest.parse(Kind.CHAT, b"{not json") is None


def test_chat_tracker_keeps_id_text_and_content_events() -> None:
    tracker = StreamTracker(Kind.CHAT, 1024)
    stream = _chat_chunk({"role": "assistant", "content": ""}) + _chat_chunk({"content": "Hel"})
    out = tracker.feed(stream + _chat_chunk({"content": "lo "})[:-3])
    assert out == stream
    assert (tracker.first_id, tracker.text, tracker.events) == ("c-1", "Hel", 1)
    tracker.feed(_chat_chunk({"content": "lo "})[-3:])
    assert (tracker.text, tracker.events, tracker.needs_resume) == ("Hello ", 2, True)


def test_a_finish_reason_or_done_means_nothing_to_resume() -> None:
    finished = StreamTracker(Kind.CHAT, 1024)
    finished.feed(_chat_chunk({}, finish="stop"))
    done = StreamTracker(Kind.COMPLETIONS, 1024)
    done.feed(_text_chunk("a ") + _event("[DONE]"))
    assert not finished.needs_resume and not done.needs_resume and done.text == "a "


def test_a_tool_call_makes_the_stream_unresumable() -> None:
    tracker = StreamTracker(Kind.CHAT, 1024)
    call = {"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": ""}}]}
    tracker.feed(_chat_chunk({"content": "let me look "}) + _chat_chunk(call))
    assert tracker.refused == "a tool call" and not tracker.needs_resume


def test_a_second_choice_makes_the_stream_unresumable() -> None:
    tracker = StreamTracker(Kind.COMPLETIONS, 1024)
    two = {"id": "x", "choices": [{"index": 0, "text": "a"}, {"index": 1, "text": "b"}]}
    tracker.feed(_event(two))
    assert tracker.refused == "more than one choice"


def test_text_over_the_cap_makes_the_stream_unresumable_and_is_let_go() -> None:
    tracker = StreamTracker(Kind.COMPLETIONS, 10)
    tracker.feed(_text_chunk("12345 ") + _text_chunk("67890 "))
    assert "--resume-text-bytes" in tracker.refused and tracker.text == ""


def test_an_endless_event_over_the_cap_makes_the_stream_unresumable() -> None:
    tracker = StreamTracker(Kind.CHAT, 64)
    assert tracker.feed(b"data: " + b"x" * 100) == b""
    assert tracker.refused and tracker.take_pending() == b"data: " + b"x" * 100


def test_chat_continuation_appends_the_partial_answer_and_lowers_max_tokens() -> None:
    request = _parse(Kind.CHAT, {**CHAT, "max_tokens": 10, "max_completion_tokens": 12})
    assert request is not None
    body = json.loads(continuation_body(request, "Hello ", 2) or b"")
    assert body["messages"] == [*CHAT["messages"], {"role": "assistant", "content": "Hello "}]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert (body["max_tokens"], body["max_completion_tokens"]) == (8, 10)


def test_a_client_continuing_its_own_assistant_message_gets_the_text_appended() -> None:
    messages = [*CHAT["messages"], {"role": "assistant", "content": "Once "}]
    request = _parse(Kind.CHAT, {**CHAT, "messages": messages, "continue_final_message": True})
    assert request is not None
    body = json.loads(continuation_body(request, "upon ", 1) or b"")
    assert body["messages"][-1] == {"role": "assistant", "content": "Once upon "}
    assert len(body["messages"]) == 2


def test_completions_continuation_is_prompt_plus_partial() -> None:
    request = _parse(Kind.COMPLETIONS, {"prompt": "Once", "stream": True, "max_tokens": 5})
    assert request is not None
    body = json.loads(continuation_body(request, " upon a ", 2) or b"")
    assert (body["prompt"], body["max_tokens"]) == ("Once upon a ", 3)


def test_no_continuation_when_the_token_budget_is_spent() -> None:
    request = _parse(Kind.COMPLETIONS, {"prompt": "Once", "stream": True, "max_tokens": 2})
    assert request is not None
    assert continuation_body(request, " upon a ", 2) is None


def test_a_break_before_any_text_resends_the_request_unchanged() -> None:
    request = _parse(Kind.CHAT, CHAT)
    assert request is not None
    assert json.loads(continuation_body(request, "", 0) or b"") == CHAT


def test_continuation_events_get_the_original_id_and_no_second_role_chunk() -> None:
    tracker = StreamTracker(Kind.CHAT, 1024)
    tracker.feed(_chat_chunk({"role": "assistant", "content": ""}) + _chat_chunk({"content": "a "}))
    tracker.begin_continuation()
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    continuation = (
        _chat_chunk({"role": "assistant", "content": ""}, ident="c-2")
        + _chat_chunk({"content": "b "}, ident="c-2")
        + _chat_chunk({}, finish="stop", ident="c-2")
        + _event({"id": "c-2", "choices": [], "usage": usage})
        + _event("[DONE]")
    )
    out = _data(tracker.feed(continuation))
    assert [c["id"] for c in out[:-1]] == ["c-1", "c-1", "c-1"] and out[-1] == b"[DONE]"
    assert out[0]["choices"][0]["delta"] == {"content": "b "}
    assert out[2]["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    assert (tracker.text, tracker.events, tracker.complete) == ("a b ", 2, True)


def test_a_continuation_keeps_its_role_chunk_when_the_client_has_none_yet() -> None:
    tracker = StreamTracker(Kind.CHAT, 1024)
    tracker.begin_continuation()
    out = _data(tracker.feed(_chat_chunk({"role": "assistant", "content": ""}, ident="c-2")))
    assert out[0]["choices"][0]["delta"]["role"] == "assistant" and out[0]["id"] == "c-2"
