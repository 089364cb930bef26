"""Streamed OpenAI requests through our load balancer with stream resume off and on.

What resume costs on the common path (no replica dies): with it on, every event of a streamed
``POST /v1/chat/completions`` is cut at its blank line and its JSON read. One replica (a raw
asyncio server answering each request with ``--events`` chat chunks and ``[DONE]``, chunked,
keep-alive; all at once, or one event every ``--token-ms`` as a model streams) and a
raw-socket client holding ``--connections`` keep-alive connections run in this process; the
load balancer (1 worker, uvloop) runs in its own. Prints, per mode, streams/s, events/s and
the load balancer's CPU time per event (user + system, from /proc), the figure that holds up
on a shared machine. ``python benchmarks/lb/stream_bench.py [--seconds N] [--token-ms MS]``.

Measured on the 2-core development VM while shared (load average 3-4), so take the ratios:

    64 events at once, 16 connections     off: 1662 streams/s, 4.4 us CPU/event
                                           on:   463 streams/s, 17.0 us CPU/event
    32 events 10 ms apart, 200 connections off: 47.5 us CPU/event   on: 73.2 us CPU/event

Resume costs about 13-25 us of CPU per event here (one JSON decode of the chunk and a little
bookkeeping, about 1.3 bare ``json.loads``). When a model streams, events arrive one per read
and the per-read cost of proxying dominates: +25-50% CPU per event. Batched events are the
worst case (the proxying cost per event is small, the decode is not). Requests that are not
resumable, and every request with resume off, are not parsed at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUEST_BODY = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
).encode()


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def sse_chunks(events: int) -> list[bytes]:
    """The stream's body as chunked-encoding pieces, one per event, then the last chunk."""
    body = []
    for i in range(events):
        delta = {"content": f"word{i} "}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]}
        body.append(f"data: {json.dumps(chunk)}\n\n".encode())
    body.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(part), part) for part in body] + [b"0\r\n\r\n"]


class Replica(asyncio.Protocol):
    """Answers every request (any method, Content-Length bodies) with the canned stream."""

    chunks: list[bytes] = []
    token_seconds = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            if self.token_seconds:
                asyncio.get_running_loop().create_task(self._stream())
            else:
                self.transport.write(HEAD + b"".join(self.chunks))  # type: ignore[attr-defined]

    async def _stream(self) -> None:
        self.transport.write(HEAD)  # type: ignore[attr-defined]
        for piece in self.chunks:
            await asyncio.sleep(self.token_seconds)
            self.transport.write(piece)  # type: ignore[attr-defined]


async def client(port: int, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(REQUEST_BODY), REQUEST_BODY)
    )
    while time.monotonic() < deadline:
        writer.write(request)
        await reader.readuntil(b"\r\n0\r\n\r\n")
        counts[0] += 1
    writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(lb: int, port: int, connections: int, seconds: float) -> tuple[float, float]:
    """(streams per second, load balancer CPU seconds per stream)."""
    counts = [0]
    warm = time.monotonic() + 1.0
    await asyncio.gather(*(client(port, warm, [0]) for _ in range(connections)))
    cpu, start = cpu_seconds(lb), time.monotonic()
    await asyncio.gather(*(client(port, start + seconds, counts) for _ in range(connections)))
    elapsed, used = time.monotonic() - start, cpu_seconds(lb) - cpu
    return counts[0] / elapsed, used / max(counts[0], 1)


async def run(args: argparse.Namespace) -> None:
    Replica.chunks = sse_chunks(args.events)
    Replica.token_seconds = args.token_ms / 1000
    replica_port = free_port()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Replica, "127.0.0.1", replica_port)
    pacing = f"one every {args.token_ms:g} ms" if args.token_ms else "all at once"
    print(f"{args.events} events per stream ({pacing}), {args.connections} connections")
    print(f"{'resume':<8}{'streams/s':>12}{'events/s':>12}{'LB CPU us/event':>17}")
    for flags in ([], ["--resume-streams"]):
        port = free_port()
        lb = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "load_balancer",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--replicas",
                f"127.0.0.1:{replica_port}",
                *flags,
            ],
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        try:
            await loop.run_in_executor(None, wait_port, port)
            rate, cpu = await measure(lb.pid, port, args.connections, args.seconds)
        finally:
            lb.terminate()
            lb.wait()
        per_event = cpu / (args.events + 1) * 1e6
        mode = "on" if flags else "off"
        print(f"{mode:<8}{rate:>12.0f}{rate * args.events:>12.0f}{per_event:>17.1f}")
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--token-ms", type=float, default=0.0, help="pause before each event")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
