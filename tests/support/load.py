"""A client that keeps sending requests through the load balancer and counts failures."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import httpx

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@dataclass
class SteadyClient:
    """Sends `rate` requests per second from one thread until stopped."""

    endpoint: str
    rate: float = 10.0
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SteadyClient:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    def _run(self) -> None:
        with httpx.Client(timeout=15) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                self._one(client)
                pause = 1.0 / self.rate - (time.monotonic() - began)
                if pause > 0:
                    self._stop.wait(pause)

    def _one(self, client: httpx.Client) -> None:
        self.sent += 1
        try:
            resp = client.post(f"{self.endpoint}/v1/chat/completions", json=CHAT)
            if resp.status_code != 200:
                self.failures.append(f"{resp.status_code}: {resp.text[:200]}")
        except httpx.HTTPError as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")


@dataclass
class StreamingClient(SteadyClient):
    """Streamed chat requests, one after another; a stream that ends without `[DONE]` is
    truncated (the user saw an answer cut off)."""

    truncated: int = 0
    completed: int = 0
    texts: set[str] = field(default_factory=set)
    """The distinct answers read to the end (one, for a model whose output is a function
    of the prompt, however many replicas an answer came from)."""

    def _one(self, client: httpx.Client) -> None:
        self.sent += 1
        body = {**CHAT, "stream": True}
        try:
            with client.stream("POST", f"{self.endpoint}/v1/chat/completions", json=body) as r:
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code}: {r.read()[:200]!r}")
                    return
                done, parts = False, []
                for line in r.iter_lines():
                    done = done or line == "data: [DONE]"
                    if line.startswith("data: {"):
                        choices = json.loads(line[6:]).get("choices") or []
                        parts += [c.get("delta", {}).get("content") or "" for c in choices]
        except httpx.HTTPError as exc:
            self.truncated += 1
            self.failures.append(f"stream cut: {type(exc).__name__}: {exc}")
            return
        if done:
            self.completed += 1
            self.texts.add("".join(parts))
        else:
            self.truncated += 1
            self.failures.append("stream ended without [DONE]")
