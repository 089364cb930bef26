"""Controller settings, read once from the environment (`SERVE_*`), with file paths under
`SERVE_HOME` (default `~/.serve`). Tests compress time through these, never by patching."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from provisioners.base import VISIBILITY_GRACE_SECONDS

DEFAULT_PORT = 46590


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{key}={raw!r} is not a number; unset it or give seconds") from None


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    return int(_float(env, key, default))


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    return raw.lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    public_host: str = "127.0.0.1"
    lb_host: str = "127.0.0.1"
    lb_port_start: int = 30001
    tick_seconds: float = 2.0
    lb_sync_seconds: float = 2.0
    wake_wait_seconds: float = 120.0
    """How long a load balancer holds a request while its service has no ready replica
    (scaled to zero, or every replica lost) before answering 503."""
    wake_queue: int = 100
    probe_failures_to_not_ready: int = 3
    not_ready_grace_seconds: float = 60.0
    orphan_scan_seconds: float = 60.0
    terminal_retention_seconds: float = 900.0
    app_failures_to_fail_service: int = 3
    qps_window_seconds: float = 60.0
    drain_seconds: float | None = None
    refusal_backoff_seconds: float = 30.0
    peers: tuple[str, ...] = ()
    clouds: tuple[str, ...] = ("local",)
    read_auth: bool = False
    allow_open_reads: bool = False
    max_body_bytes: int = 1024 * 1024
    max_bundle_bytes: int = 512 * 1024 * 1024
    start_load_balancers: bool = True
    provisioning_deadline_seconds: float = 600.0
    teardown_deadline_seconds: float = 600.0
    cloud_block_seconds: float = 300.0
    launch_wait_seconds: float = 10.0
    sweep_seconds: float = 600.0
    events_per_service: int = 1000
    tick_workers: int = 8
    """Services ticked at once. Fewer share the GIL with less else, more get through a
    large fleet sooner, since a tick also waits (database, launches): scale benchmark,
    100 x 20 with 4 workers: tick p50 22 ms, cycle p99 0.67 s, listing p99 86 ms (8: 52 ms,
    0.73-0.81 s, 115-150 ms); 500 x 4 with 4: cycle p99 12.0 s (8: 7.1 s)."""
    visibility_grace_seconds: float = VISIBILITY_GRACE_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("SERVE_HOME") or Path.home() / ".serve").expanduser()
        db = env.get("SERVE_DATABASE_URL") or f"sqlite:///{home / 'serve.db'}"
        clouds = tuple(c.strip() for c in env.get("SERVE_CLOUDS", "local").split(",") if c.strip())
        return cls(
            home=home,
            database_url=db,
            host=env.get("SERVE_CONTROLLER_HOST", "127.0.0.1"),
            port=_int(env, "SERVE_CONTROLLER_PORT", DEFAULT_PORT),
            public_host=env.get("SERVE_PUBLIC_HOST", "127.0.0.1"),
            lb_host=env.get("SERVE_LB_HOST", "127.0.0.1"),
            lb_port_start=_int(env, "SERVE_LB_PORT_START", 30001),
            tick_seconds=_float(env, "SERVE_TICK_SECONDS", 2.0),
            lb_sync_seconds=_float(env, "SERVE_LB_SYNC_SECONDS", 2.0),
            wake_wait_seconds=_float(env, "SERVE_WAKE_WAIT_SECONDS", 120.0),
            wake_queue=_int(env, "SERVE_WAKE_QUEUE", 100),
            probe_failures_to_not_ready=_int(env, "SERVE_PROBE_FAILURES", 3),
            not_ready_grace_seconds=_float(env, "SERVE_NOT_READY_GRACE_SECONDS", 60.0),
            orphan_scan_seconds=_float(env, "SERVE_ORPHAN_SCAN_SECONDS", 60.0),
            terminal_retention_seconds=_float(env, "SERVE_TERMINAL_RETENTION_SECONDS", 900.0),
            app_failures_to_fail_service=_int(env, "SERVE_APP_FAILURES_TO_FAIL", 3),
            qps_window_seconds=_float(env, "SERVE_QPS_WINDOW_SECONDS", 60.0),
            drain_seconds=_float(env, "SERVE_DRAIN_SECONDS", -1.0),
            refusal_backoff_seconds=_float(env, "SERVE_REFUSAL_BACKOFF_SECONDS", 30.0),
            peers=tuple(
                p.strip().rstrip("/")
                for p in env.get("SERVE_CONTROLLER_PEERS", "").split(",")
                if p.strip()
            ),
            clouds=clouds or ("local",),
            read_auth=_bool(env, "SERVE_READ_AUTH", False),
            allow_open_reads=_bool(env, "SERVE_ALLOW_OPEN_READS", False),
            max_body_bytes=_int(env, "SERVE_MAX_BODY_BYTES", 1024 * 1024),
            max_bundle_bytes=_int(env, "SERVE_MAX_BUNDLE_BYTES", 512 * 1024 * 1024),
            start_load_balancers=_bool(env, "SERVE_START_LOAD_BALANCERS", True),
            provisioning_deadline_seconds=_float(env, "SERVE_PROVISIONING_DEADLINE_SECONDS", 600.0),
            teardown_deadline_seconds=_float(env, "SERVE_TEARDOWN_DEADLINE_SECONDS", 600.0),
            cloud_block_seconds=_float(env, "SERVE_CLOUD_BLOCK_SECONDS", 300.0),
            launch_wait_seconds=_float(env, "SERVE_LAUNCH_WAIT_SECONDS", 10.0),
            sweep_seconds=_float(env, "SERVE_SWEEP_SECONDS", 600.0),
            events_per_service=_int(env, "SERVE_EVENTS_PER_SERVICE", 1000),
            tick_workers=max(1, _int(env, "SERVE_TICK_WORKERS", 8)),
            visibility_grace_seconds=_float(
                env, "SERVE_VISIBILITY_GRACE_SECONDS", VISIBILITY_GRACE_SECONDS
            ),
        )

    @property
    def binds_beyond_loopback(self) -> bool:
        return self.host not in ("127.0.0.1", "localhost", "::1")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def controller_urls(self) -> str:
        """What load balancers sync with: every controller that may lead, this one first."""
        others = [p for p in self.peers if p != self.url]
        return ",".join([self.url, *others])

    @property
    def drain(self) -> float:
        """How long a scaled-down replica keeps serving: by default two load balancer
        syncs plus a second, so every load balancer has dropped it before it stops."""
        if self.drain_seconds is not None and self.drain_seconds >= 0:
            return self.drain_seconds
        return 2 * self.lb_sync_seconds + 1.0

    @property
    def token_path(self) -> Path:
        return self.home / "token"

    @property
    def state_path(self) -> Path:
        """Where a running controller says where it is (url, pid, database)."""
        return self.home / "controller.json"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def service_log_dir(self, service: str) -> Path:
        return self.log_dir / "services" / service

    @property
    def bundle_dir(self) -> Path:
        """Where packed workdirs and file mounts are kept, by SHA-256."""
        return self.home / "bundles"

    @property
    def local_root(self) -> Path:
        return self.home / "local"
