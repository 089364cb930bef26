"""Baseline for the benchmark note: the usual Python stack (uvicorn ASGI app + httpx client).

``python usual_stack_proxy.py PORT URL,URL`` proxies every request round-robin with one
pooled ``httpx.AsyncClient``, streaming the response; no retries, no header hygiene. It
exists only to show what the ordinary approach reaches on this machine.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import httpx
import uvicorn


def make_app(replicas: list[str]) -> Any:
    turn = itertools.cycle(replicas)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    client = httpx.AsyncClient(limits=limits, timeout=30)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        url = next(turn) + scope["path"]
        request = client.build_request(scope["method"], url)
        response = await client.send(request, stream=True)
        headers = [(k.encode(), v.encode()) for k, v in response.headers.items()]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        async for part in response.aiter_raw():
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        await response.aclose()

    return app


if __name__ == "__main__":
    port, urls = int(sys.argv[1]), sys.argv[2].split(",")
    uvicorn.run(
        make_app(urls),
        host="127.0.0.1",
        port=port,
        log_level="error",
        loop="uvloop",
        http="httptools",
    )
