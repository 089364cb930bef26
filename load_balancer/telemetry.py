"""Request counters, latency histogram and in-flight gauges, shared by worker processes.

Every worker owns one row of int64 slots in a buffer (an anonymous shared ``mmap`` when
several workers fork from one supervisor, a ``bytearray`` otherwise). Invariant: a worker
writes only its own row; readers (the metrics endpoint, the controller sync) sum all rows, so
totals are exact without locks (aligned 8-byte stores are atomic on the platforms we run on).
One slot after the rows belongs to whoever syncs with the controller (the supervisor, or the
sole worker): the wall-clock time of its last successful sync, which no worker writes.
"""

from __future__ import annotations

import bisect
import enum
import mmap
from collections.abc import Iterable


class ErrorKind(enum.StrEnum):
    """How a request went wrong: the `kind` label of `lb_errors_total`, and the `error` of
    the load balancer's own JSON answers where it answers itself."""

    CONNECT_FAILED = "connect_failed"
    RESET_BEFORE_RESPONSE = "reset_before_response"
    RESET_DURING_RESPONSE = "reset_during_response"
    RESPONSE_TIMEOUT = "response_timeout"
    NO_READY_REPLICA = "no_ready_replica"
    ALL_ATTEMPTS_FAILED = "all_attempts_failed"
    CLIENT_DISCONNECTED = "client_disconnected"
    BAD_REQUEST = "bad_request"
    UPSTREAM_PROTOCOL = "upstream_protocol"
    UPGRADE_REFUSED = "upgrade_refused"
    REQUEST_TIMEOUT = "request_timeout"
    REQUEST_HEADER_FIELDS_TOO_LARGE = "request_header_fields_too_large"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    INVALID_API_KEY = "invalid_api_key"
    NOT_SYNCED = "not_synced"


ERROR_KINDS = tuple(ErrorKind)
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
REPLICA_SLOTS = 1024
MAX_STATUS = 600

RECEIVED = 0
RETRIES = 1
CODES = 2
ERRORS = CODES + MAX_STATUS
BUCKETS = ERRORS + len(ERROR_KINDS)
LATENCY_SUM_US = BUCKETS + len(LATENCY_BUCKETS) + 1
LATENCY_COUNT = LATENCY_SUM_US + 1
RESUMES = LATENCY_COUNT + 1
RESUME_FAILURES = RESUMES + 1
RESUME_GAP_SUM_US = RESUME_FAILURES + 1
RESUME_GAP_COUNT = RESUME_GAP_SUM_US + 1
IN_FLIGHT = RESUME_GAP_COUNT + 1
IN_FLIGHT_END = IN_FLIGHT + REPLICA_SLOTS
PROMPT_TOKENS = IN_FLIGHT_END
COMPLETION_TOKENS = PROMPT_TOKENS + REPLICA_SLOTS
METERED = COMPLETION_TOKENS + REPLICA_SLOTS
ROW_SLOTS = METERED + 1
_ERROR_INDEX = {kind: ERRORS + i for i, kind in enumerate(ERROR_KINDS)}


class WorkerCounters:
    """The row of one worker; every method is a few integer stores (hot path)."""

    def __init__(self, row: memoryview) -> None:
        self._row = row

    def received(self) -> None:
        self._row[RECEIVED] += 1

    def retried(self) -> None:
        self._row[RETRIES] += 1

    def answered(self, status: int, seconds: float) -> None:
        row = self._row
        row[CODES + (status if 0 < status < MAX_STATUS else 0)] += 1
        row[BUCKETS + bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        row[LATENCY_SUM_US] += int(seconds * 1e6)
        row[LATENCY_COUNT] += 1

    def error(self, kind: ErrorKind) -> None:
        self._row[_ERROR_INDEX[kind]] += 1

    def stream_resumed(self, gap_seconds: float) -> None:
        row = self._row
        row[RESUMES] += 1
        row[RESUME_GAP_SUM_US] += int(gap_seconds * 1e6)
        row[RESUME_GAP_COUNT] += 1

    def stream_resume_failed(self) -> None:
        self._row[RESUME_FAILURES] += 1

    def in_flight(self, slot: int, delta: int) -> None:
        self._row[IN_FLIGHT + slot] += delta

    def in_flight_total(self) -> int:
        return sum(self._row[IN_FLIGHT:IN_FLIGHT_END])

    def clear_in_flight(self) -> None:
        """Forget a dead worker's gauges before its replacement takes the row (its token
        counters stay: they are totals the syncer has not necessarily reported yet)."""
        for slot in range(IN_FLIGHT, IN_FLIGHT_END):
            self._row[slot] = 0

    def tokens(self, slot: int, prompt: int, completion: int) -> None:
        """An answer of the replica in ``slot`` said what it used (load_balancer/usage.py)."""
        row = self._row
        row[PROMPT_TOKENS + slot] += prompt
        row[COMPLETION_TOKENS + slot] += completion
        row[METERED] += 1


class Telemetry:
    """All workers' rows; ``shared=True`` puts them in memory inherited across ``fork``."""

    def __init__(self, workers: int, shared: bool = False) -> None:
        size = (workers * ROW_SLOTS + 1) * 8
        self._buffer: mmap.mmap | bytearray = mmap.mmap(-1, size) if shared else bytearray(size)
        self._slots = memoryview(self._buffer).cast("q")
        self.workers = workers

    def worker(self, index: int) -> WorkerCounters:
        return WorkerCounters(self._slots[index * ROW_SLOTS : (index + 1) * ROW_SLOTS])

    def total(self, slot: int) -> int:
        return sum(self._slots[w * ROW_SLOTS + slot] for w in range(self.workers))

    def received_total(self) -> int:
        return self.total(RECEIVED)

    def in_flight_total(self) -> int:
        """Requests in flight to replicas, over every worker."""
        return sum(self.total(slot) for slot in range(IN_FLIGHT, IN_FLIGHT_END))

    def tokens_by_slot(self) -> dict[int, tuple[int, int]]:
        """Replica slot -> (prompt, completion) tokens since start, over every worker; only
        slots that served any."""
        found: dict[int, tuple[int, int]] = {}
        for slot in range(REPLICA_SLOTS):
            prompt = self.total(PROMPT_TOKENS + slot)
            completion = self.total(COMPLETION_TOKENS + slot)
            if prompt or completion:
                found[slot] = (prompt, completion)
        return found

    def sync_succeeded(self, unix_seconds: float) -> None:
        """Called by the syncer alone, after each sync the controller answered with 200."""
        self._slots[self.workers * ROW_SLOTS] = int(unix_seconds * 1000)

    def last_sync_seconds(self) -> float:
        """Unix time of the last successful sync; 0 before the first."""
        return self._slots[self.workers * ROW_SLOTS] / 1000


def _line(name: str, labels: dict[str, str], value: float) -> str:
    """Values in full: `:g` kept 6 digits, rounding a Unix time by up to an hour and counts
    past a million."""
    rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    number = repr(value)
    return f"{name}{{{rendered}}} {number}" if rendered else f"{name} {number}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _header(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def render_prometheus(
    telemetry: Telemetry,
    service: str,
    replicas: Iterable[tuple[str, int]],
    follows_controller: bool = False,
) -> str:
    """Prometheus text exposition (format 0.0.4) of the summed rows of every worker; the
    last-sync gauge only where a controller is followed (a standalone LB has none to reach)."""
    base = {"service": service}
    replica_list = list(replicas)
    out = _header("lb_received_requests_total", "counter", "Requests received for proxying.")
    out.append(_line("lb_received_requests_total", base, telemetry.total(RECEIVED)))
    out += _header("lb_requests_total", "counter", "Requests answered, by HTTP status code.")
    for code in range(MAX_STATUS):
        count = telemetry.total(CODES + code)
        if count:
            out.append(_line("lb_requests_total", {**base, "code": str(code)}, count))
    out += _header("lb_errors_total", "counter", "Failures by kind (a retried one counts too).")
    for kind in ERROR_KINDS:
        out.append(
            _line("lb_errors_total", {**base, "kind": kind}, telemetry.total(_ERROR_INDEX[kind]))
        )
    out += _header("lb_retries_total", "counter", "Requests re-sent to another replica.")
    out.append(_line("lb_retries_total", base, telemetry.total(RETRIES)))
    out += _render_histogram(telemetry, base)
    out += _render_resumes(telemetry, base)
    out += _render_tokens(telemetry, base)
    out += _header("lb_replica_in_flight", "gauge", "Requests in flight per ready replica.")
    for url, slot in replica_list:
        value = telemetry.total(IN_FLIGHT + slot)
        out.append(_line("lb_replica_in_flight", {**base, "replica": url}, value))
    out += _header("lb_ready_replicas", "gauge", "Replicas currently receiving new requests.")
    out.append(_line("lb_ready_replicas", base, len(replica_list)))
    if follows_controller:
        out += _render_last_sync(telemetry, base)
    return "\n".join(out) + "\n"


def _render_last_sync(telemetry: Telemetry, base: dict[str, str]) -> list[str]:
    name = "lb_last_sync_success_timestamp_seconds"
    text = "Unix time of the last sync any controller answered (0: none yet)."
    return [*_header(name, "gauge", text), _line(name, base, telemetry.last_sync_seconds())]


def _render_histogram(telemetry: Telemetry, base: dict[str, str]) -> list[str]:
    name = "lb_request_duration_seconds"
    out = _header(name, "histogram", "Time from request head to last response byte.")
    cumulative = 0
    bounds = [*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"]
    for i, bound in enumerate(bounds):
        cumulative += telemetry.total(BUCKETS + i)
        out.append(_line(f"{name}_bucket", {**base, "le": bound}, cumulative))
    out.append(_line(f"{name}_sum", base, telemetry.total(LATENCY_SUM_US) / 1e6))
    out.append(_line(f"{name}_count", base, telemetry.total(LATENCY_COUNT)))
    return out


def _render_resumes(telemetry: Telemetry, base: dict[str, str]) -> list[str]:
    out = _header(
        "lb_stream_resumes_total", "counter", "Broken streams continued on another replica."
    )
    out.append(_line("lb_stream_resumes_total", base, telemetry.total(RESUMES)))
    name = "lb_stream_resume_failures_total"
    out += _header(name, "counter", "Broken streams ended with a stream_resume_failed event.")
    out.append(_line(name, base, telemetry.total(RESUME_FAILURES)))
    name = "lb_stream_resume_gap_seconds"
    out += _header(name, "summary", "Time from a break to the first continued byte sent.")
    out.append(_line(f"{name}_sum", base, telemetry.total(RESUME_GAP_SUM_US) / 1e6))
    out.append(_line(f"{name}_count", base, telemetry.total(RESUME_GAP_COUNT)))
    return out


def _render_tokens(telemetry: Telemetry, base: dict[str, str]) -> list[str]:
    name = "lb_tokens_total"
    out = _header(name, "counter", "Tokens that answers reported in their OpenAI usage.")
    for kind, start in (("prompt", PROMPT_TOKENS), ("completion", COMPLETION_TOKENS)):
        total = sum(telemetry.total(start + slot) for slot in range(REPLICA_SLOTS))
        out.append(_line(name, {**base, "kind": kind}, total))
    name = "lb_metered_responses_total"
    out += _header(name, "counter", "Answers whose token usage was read.")
    out.append(_line(name, base, telemetry.total(METERED)))
    return out
