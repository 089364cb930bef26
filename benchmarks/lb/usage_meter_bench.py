"""What reading ``usage`` costs the load balancer per OpenAI answer (load_balancer/usage.py).

Every ``POST`` to an OpenAI path is metered: each body read is appended to a bounded tail
(a copy), and once the answer is complete its usage is parsed. This times exactly that, in
process, on answers shaped as vLLM sends them, fed in the pieces a socket would deliver:

- a chat answer as one JSON body (``--tokens`` words of content);
- a stream of ``--tokens`` chunks, one per read (a model streaming), with the usage chunk;
- the same stream in 16 KiB reads (a fast replica, events batched).

Prints microseconds of CPU per answer and per event (``time.process_time``, so a busy
machine does not inflate it). ``python benchmarks/lb/usage_meter_bench.py [--tokens N]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from load_balancer.usage import UsageMeter

SSE = [(b"content-type", b"text/event-stream")]
JSON = [(b"content-type", b"application/json")]


def _chunk(text: str | None, usage: dict[str, int] | None = None) -> bytes:
    choices = [{"index": 0, "delta": {"content": text}, "finish_reason": None}] if text else []
    body = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return b"data: " + json.dumps({**body, "choices": choices, "usage": usage}).encode() + b"\n\n"


def answers(tokens: int) -> dict[str, tuple[list[bytes], list[tuple[bytes, bytes]], int]]:
    usage = {"prompt_tokens": 50, "completion_tokens": tokens, "total_tokens": 50 + tokens}
    content = " ".join(f"w{i}" for i in range(tokens))
    whole = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": usage,
    }
    events = [_chunk(f" w{i}") for i in range(tokens)] + [_chunk(None, usage), b"data: [DONE]\n\n"]
    stream = b"".join(events)
    batched = [stream[i : i + 16384] for i in range(0, len(stream), 16384)]
    return {
        "json body": ([json.dumps(whole).encode()], JSON, 1),
        "stream, one event per read": (events, SSE, len(events)),
        "stream, 16 KiB reads": (batched, SSE, len(events)),
    }


def per_answer(reads: list[bytes], headers: list[tuple[bytes, bytes]]) -> Callable[[], None]:
    def run() -> None:
        meter = UsageMeter.for_request(b"POST", b"/v1/chat/completions")
        assert meter is not None and meter.start(200, headers)
        for data in reads:
            meter.feed(data)
        assert meter.tokens() is not None

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256, help="completion tokens per answer")
    parser.add_argument("--seconds", type=float, default=2.0, help="per case")
    args = parser.parse_args()
    print(f"{args.tokens} completion tokens per answer")
    for name, (reads, headers, events) in answers(args.tokens).items():
        run = per_answer(reads, headers)
        count, start = 0, time.process_time()
        while time.process_time() - start < args.seconds:
            for _ in range(20):
                run()
            count += 20
        micros = (time.process_time() - start) / count * 1e6
        print(f"  {name:28} {micros:8.1f} us CPU per answer  {micros / events:6.2f} us per event")


if __name__ == "__main__":
    main()
