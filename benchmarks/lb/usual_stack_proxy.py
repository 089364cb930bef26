"""Baselines for the benchmark note: the usual Python stack (uvicorn ASGI app + an HTTP client).

``python usual_stack_proxy.py PORT URL,URL httpx|aiohttp`` proxies every request round-robin
through one pooled client (httpx.AsyncClient or aiohttp.ClientSession), streaming the
response; no retries, no header hygiene. It only shows what the ordinary approach reaches.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import uvicorn

Upstream = Callable[
    [str, str], Awaitable[tuple[int, list[tuple[bytes, bytes]], AsyncIterator[bytes]]]
]


def httpx_upstream() -> Upstream:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    client = httpx.AsyncClient(limits=limits, timeout=30)

    async def call(
        method: str, url: str
    ) -> tuple[int, list[tuple[bytes, bytes]], AsyncIterator[bytes]]:
        response = await client.send(client.build_request(method, url), stream=True)
        headers = [(k.encode(), v.encode()) for k, v in response.headers.items()]
        return response.status_code, headers, response.aiter_raw()

    return call


def aiohttp_upstream() -> Upstream:
    session: aiohttp.ClientSession | None = None

    async def call(
        method: str, url: str
    ) -> tuple[int, list[tuple[bytes, bytes]], AsyncIterator[bytes]]:
        nonlocal session
        if session is None:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        response = await session.request(method, url, auto_decompress=False)
        headers = [
            (k.encode(), v.encode())
            for k, v in response.headers.items()
            if k.lower() not in ("transfer-encoding", "connection")
        ]
        return response.status, headers, response.content.iter_any()

    return call


def make_app(replicas: list[str], upstream: Upstream) -> Any:
    turn = itertools.cycle(replicas)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status, headers, body = await upstream(scope["method"], next(turn) + scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        async for part in body:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


if __name__ == "__main__":
    port, urls, client = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
    upstream = httpx_upstream() if client == "httpx" else aiohttp_upstream()
    uvicorn.run(
        make_app(urls, upstream),
        host="127.0.0.1",
        port=port,
        log_level="error",
        loop="uvloop",
        http="httptools",
    )
