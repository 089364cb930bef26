"""Readiness probes: an HTTP GET (or POST with `post_data`) that must answer 2xx in time."""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from replica_manager.records import ProbeSpec


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


def probe(client: httpx.Client, base_url: str, spec: ProbeSpec) -> ProbeResult:
    url = base_url.rstrip("/") + spec.path
    headers = dict(spec.headers)
    try:
        if spec.post_data is None:
            resp = client.get(url, headers=headers, timeout=spec.timeout_seconds)
        else:
            body = spec.post_data
            content = json.dumps(body) if isinstance(body, dict) else body
            headers.setdefault("content-type", "application/json")
            resp = client.post(url, content=content, headers=headers, timeout=spec.timeout_seconds)
    except httpx.TimeoutException:
        return ProbeResult(False, f"no answer from {url} within {spec.timeout_seconds:g}s")
    except httpx.HTTPError as exc:
        return ProbeResult(False, f"{type(exc).__name__} from {url}: {exc}")
    if 200 <= resp.status_code < 300:
        return ProbeResult(True, f"{resp.status_code} from {url}")
    return ProbeResult(False, f"{resp.status_code} from {url}")


class Prober:
    """Probes many replicas at once so one slow replica does not delay the others."""

    def __init__(self, max_workers: int = 16):
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="probe")
        self._client = httpx.Client(follow_redirects=False)

    def probe_all(self, targets: Iterable[tuple[str, ProbeSpec]]) -> list[ProbeResult]:
        items = list(targets)
        return list(self._pool.map(lambda t: probe(self._client, t[0], t[1]), items))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
