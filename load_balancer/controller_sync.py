"""The sync call: report request counts to the controller, learn the ready replicas.

Contract: ``POST {controller}/api/v1/services/{name}/lb-sync`` with a bearer token and
``{"request_count", "window_seconds", "lb_id", "seq", "in_flight", "tokens": {url: [prompt,
completion]}}`` (tokens only when answers reported usage since the last report); 200 answers
``{"ready_replicas": [...], "load_balancing_policy": ..., "resume_streams": bool,
"replica_weights": {url: qps}, "session_header": "x-session-id", "api_key_hashes": [...]}``
(policy, resume, session header and key hashes may be absent: the current setting stays;
weights may be absent: every replica weighs the same; an empty ``api_key_hashes`` opens the
endpoint). Invariants: a request, and a token, is counted once. Reports are numbered
(`seq`); one that gets no 200 is sent again unchanged until one comes, and the controller
records each (`lb_id`, `seq`) once, so a report whose 200 was lost on the way back (say a
timeout after the controller recorded it) is not counted twice. On any failure the last
known replicas keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
from pydantic import BaseModel, Field, StringConstraints, ValidationError, field_validator

from load_balancer.api_keys import MAX_KEYS
from load_balancer.balancing import POLICIES, SlotAllocator
from load_balancer.config import HEADER_NAME, LBConfig, normalise_replica_url
from load_balancer.structured_log import log_event
from load_balancer.telemetry import REPLICA_SLOTS
from load_balancer.wake import WakeQueue

Assignments = list[tuple[str, int]]
TokenTotals = dict[int, tuple[int, int]]
WAKE_SYNC_SECONDS = 0.5
Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]


@dataclass(frozen=True)
class SyncUpdate:
    """What one sync tells the workers; None keeps a worker's current setting. `weights`
    (url -> capacity) is always the whole truth: empty means every replica weighs the same."""

    assignments: Assignments
    policy: str | None = None
    resume_streams: bool | None = None
    weights: dict[str, float] = field(default_factory=dict)
    session_header: str | None = None
    api_key_hashes: frozenset[str] | None = None


ApplyFn = Callable[[SyncUpdate], None]
KeyHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class SyncResponse(BaseModel):
    """The controller's answer (unknown extra fields are ignored for forward compatibility)."""

    ready_replicas: list[str]
    load_balancing_policy: str | None = None
    resume_streams: bool | None = None
    replica_weights: dict[str, Weight] | None = None
    session_header: str | None = None
    api_key_hashes: list[KeyHash] | None = Field(None, max_length=MAX_KEYS)

    @field_validator("session_header")
    @classmethod
    def _header_name(cls, name: str | None) -> str | None:
        if name is not None and not HEADER_NAME.match(name):
            raise ValueError(f"session_header {name!r} is not a header name")
        return None if name is None else name.lower()

    @field_validator("load_balancing_policy")
    @classmethod
    def _known_policy(cls, name: str | None) -> str | None:
        if name is not None and name not in POLICIES:
            raise ValueError(f"unknown load_balancing_policy {name!r}")
        return name


@dataclass(frozen=True)
class SyncOutcome:
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Report:
    """One numbered report: what it says, and the totals it brings the reported ones to."""

    body: dict[str, object]
    received_total: int
    tokens: TokenTotals
    taken_at: float


class ControllerSync:
    """Runs the sync right away and then every ``--sync-interval`` seconds."""

    def __init__(
        self,
        config: LBConfig,
        received_total: Callable[[], int],
        apply: ApplyFn,
        clock: Callable[[], float] = time.monotonic,
        wake: WakeQueue | None = None,
        in_flight: Callable[[], int] | None = None,
        synced: Callable[[], None] | None = None,
        tokens: Callable[[], TokenTotals] | None = None,
    ) -> None:
        self._config = config
        self._synced = synced
        """Told of each successful sync (the last-sync gauge that alerts read)."""
        self._wake = wake
        self._in_flight = in_flight
        self._id = secrets.token_hex(6)
        """Tells this load balancer's reports from others' (its requests in flight are
        averaged per load balancer, then summed)."""
        self._received_total = received_total
        self._apply = apply
        self._clock = clock
        self._slots = SlotAllocator(REPLICA_SLOTS)
        self._tokens = tokens
        self._tokens_reported: TokenTotals = {}
        self._slot_urls: dict[int, str] = {}
        """The last replica each slot was given to: tokens of an answer that ended after its
        replica left the ready list still go to that replica."""
        self._reported = 0
        self._last_success = clock()
        self._current = 0
        self._seq = 0
        self._unanswered: Report | None = None
        """The last report, until a controller answers it: sent again as it was (same number,
        same counts), so a controller that recorded it before its answer was lost sees the
        number and does not count it twice. Newer counts wait for the next report."""

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=max(self._config.sync_interval, 5.0)) as client:
            while True:
                await self.sync_once(client)
                await self._pause()

    async def _pause(self) -> None:
        """The sync interval; while requests wait for a replica, at most WAKE_SYNC_SECONDS,
        and cut short when one starts waiting (the controller hears of the traffic, and
        scales up from zero, a sync sooner; the first replica is served a sync sooner)."""
        wake = self._wake
        if wake is None:
            await asyncio.sleep(self._config.sync_interval)
            return
        pause = min(self._config.sync_interval, WAKE_SYNC_SECONDS) if wake.waiting else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.sync_now.wait(), pause or self._config.sync_interval)
        wake.sync_now.clear()

    async def sync_once(self, client: httpx.AsyncClient) -> SyncOutcome:
        report = self._unanswered or self._next_report()
        payload = dict(report.body)
        if self._in_flight is not None:
            payload["in_flight"] = self._in_flight()  # a gauge: now, not when first sent
        outcome = await self._post(client, payload)
        if not outcome.ok:
            self._unanswered = report
            return outcome
        self._unanswered = None
        self._seq += 1
        self._tokens_reported.update(report.tokens)
        self._reported = report.received_total
        self._last_success = report.taken_at
        if self._synced is not None:
            self._synced()
        return outcome

    def _next_report(self) -> Report:
        total = self._received_total()
        now = self._clock()
        body: dict[str, object] = {
            "request_count": total - self._reported,
            "window_seconds": round(max(now - self._last_success, 0.0), 3),
            "lb_id": self._id,
            "seq": self._seq,
        }
        tokens = self._tokens() if self._tokens is not None else {}
        if deltas := self._token_deltas(tokens):
            body["tokens"] = deltas
        return Report(body, total, dict(tokens), now)

    def _token_deltas(self, totals: TokenTotals) -> dict[str, list[int]]:
        """Replica URL -> [prompt, completion] tokens not reported yet."""
        deltas: dict[str, list[int]] = {}
        for slot, (prompt, completion) in totals.items():
            before = self._tokens_reported.get(slot, (0, 0))
            url = self._slot_urls.get(slot)
            new = [prompt - before[0], completion - before[1]]
            if url is not None and (new[0] or new[1]):
                sums = deltas.setdefault(url, [0, 0])
                sums[0] += new[0]
                sums[1] += new[1]
        return deltas

    async def _post(self, client: httpx.AsyncClient, payload: dict[str, object]) -> SyncOutcome:
        """Ask each controller in turn, starting with the last one that answered."""
        try:
            headers = {"Authorization": f"Bearer {self._read_token()}"}
        except OSError as exc:
            return self._failed("token_unreadable", str(exc))
        urls = self._config.controller_urls
        outcome = SyncOutcome(False, "no controller URL")
        for step in range(len(urls)):
            index = (self._current + step) % len(urls)
            outcome = await self._post_to(client, urls[index], payload, headers)
            if outcome.ok or outcome.reason.startswith("controller answered 404"):
                self._current = index
                return outcome
        return outcome

    async def _post_to(
        self,
        client: httpx.AsyncClient,
        base: str,
        payload: dict[str, object],
        headers: dict[str, str],
    ) -> SyncOutcome:
        url = f"{base}/api/v1/services/{self._config.service}/lb-sync"
        try:
            response = await client.post(url, json=payload, headers=headers)
        except (OSError, httpx.HTTPError) as exc:
            return self._failed("controller_unreachable", f"{base}: {type(exc).__name__}: {exc}")
        if response.status_code == 404:
            return self._failed(
                "service_gone", "controller answered 404; keeping the last replicas"
            )
        if response.status_code != 200:
            return self._failed(
                "sync_rejected", f"{base}: HTTP {response.status_code}: {response.text[:200]}"
            )
        try:
            answer = SyncResponse.model_validate_json(response.content)
            urls = [normalise_replica_url(u) for u in answer.ready_replicas]
            weights = {
                normalise_replica_url(u): w for u, w in (answer.replica_weights or {}).items()
            }
        except (ValidationError, ValueError) as exc:
            return self._failed("sync_bad_answer", str(exc)[:300])
        assignments = self._slots.assign(urls)
        self._slot_urls.update((slot, url) for url, slot in assignments)
        policy, resume = answer.load_balancing_policy, answer.resume_streams
        hashes = None if answer.api_key_hashes is None else frozenset(answer.api_key_hashes)
        update = SyncUpdate(assignments, policy, resume, weights, answer.session_header, hashes)
        self._apply(update)
        return SyncOutcome(True)

    def _read_token(self) -> str:
        path = self._config.token_file or ""
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise OSError(f"cannot read --token-file {path}: {exc.strerror}") from exc

    def _failed(self, event: str, reason: str) -> SyncOutcome:
        log_event(
            "warning",
            event,
            service=self._config.service,
            controllers=",".join(self._config.controller_urls),
            reason=reason,
            action="serving the last known ready replicas; retrying next interval",
        )
        return SyncOutcome(False, reason)


def standalone_assignments(config: LBConfig) -> Assignments:
    return SlotAllocator(REPLICA_SLOTS).assign(list(config.replicas))
