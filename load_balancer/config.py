"""Command-line contract of ``python -m load_balancer`` parsed into one frozen config.

Two modes: *controller* (``--controller-url``, ``--service``, ``--token-file``; the ready
replicas come from the controller's sync call) and *standalone* (``--replicas``; a fixed list).
Either serves HTTPS with ``--tls-certfile`` and ``--tls-keyfile`` (see ``load_balancer.tls``).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from load_balancer.affinity import DEFAULT_BALANCE_FACTOR
from load_balancer.balancing import POLICIES
from load_balancer.tls import TlsFiles

HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
"""A header field name is a token (RFC 9110 section 5.1)."""


class ConfigError(ValueError):
    """The command line is inconsistent; the message names the flag and the fix."""


@dataclass(frozen=True)
class LBConfig:
    """Everything a load balancer process needs; built once at start, never mutated."""

    host: str
    port: int
    policy: str
    replicas: tuple[str, ...]
    controller_urls: tuple[str, ...]
    service: str | None
    token_file: str | None
    sync_interval: float
    workers: int
    max_attempts: int
    connect_timeout: float
    response_timeout: float
    keepalive_timeout: float
    request_head_timeout: float
    max_head_bytes: int
    max_connections: int
    replay_buffer_bytes: int
    event_loop: str = "uvloop"
    resume_streams: bool = False
    max_resumes: int = 2
    resume_text_bytes: int = 256 << 10
    wake_wait: float = 0.0
    wake_queue: int = 100
    session_header: str = "x-session-id"
    affinity_balance_factor: float = DEFAULT_BALANCE_FACTOR
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_check_seconds: float = 5.0

    @property
    def standalone(self) -> bool:
        return not self.controller_urls

    @property
    def service_label(self) -> str:
        return self.service or "standalone"

    @property
    def tls(self) -> TlsFiles | None:
        if self.tls_certfile and self.tls_keyfile:
            return TlsFiles(self.tls_certfile, self.tls_keyfile)
        return None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m load_balancer",
        description="HTTP load balancer for one service's ready replicas.",
    )
    p.add_argument("--port", type=int, required=True, help="port to listen on")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    p.add_argument(
        "--controller-url",
        help="controller base URL, e.g. http://127.0.0.1:8765; several, comma-separated, for "
        "controllers that take over from one another (each sync tries them in turn)",
    )
    p.add_argument("--service", help="service name known to the controller")
    p.add_argument("--token-file", help="file holding the controller's bearer token")
    p.add_argument("--sync-interval", type=float, default=2.0, help="seconds between syncs")
    p.add_argument("--replicas", help="standalone mode: comma-separated replica URLs")
    p.add_argument("--policy", choices=tuple(POLICIES), default="least_load")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    p.add_argument("--max-attempts", type=int, default=3, help="tries per request, >= 1")
    p.add_argument("--connect-timeout", type=float, default=5.0, help="seconds per connect")
    p.add_argument(
        "--response-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for a replica's response head (504 after that)",
    )
    p.add_argument("--keepalive-timeout", type=float, default=75.0, help="idle client seconds")
    p.add_argument(
        "--request-head-timeout",
        type=float,
        default=10.0,
        help="seconds from a request's first byte to the end of its headers (408 after that)",
    )
    p.add_argument(
        "--max-head-bytes",
        type=int,
        default=64 << 10,
        help="largest request line plus headers, in bytes (431 above that)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=10_000,
        help="open client connections per worker process (with --workers N the load balancer "
        "holds up to N times this); one more is answered 503 and closed",
    )
    p.add_argument(
        "--replay-buffer-bytes",
        type=int,
        default=1 << 20,
        help="request bytes kept for replay on retry; larger bodies are not retried",
    )
    p.add_argument(
        "--resume-streams",
        action="store_true",
        help="continue a streamed OpenAI answer that a replica cut off on another replica "
        "(in controller mode the controller's resume_streams setting overrides this)",
    )
    p.add_argument(
        "--max-resumes",
        type=int,
        default=2,
        help="continuation attempts per broken stream (default 2)",
    )
    p.add_argument(
        "--resume-text-bytes",
        type=int,
        default=256 << 10,
        help="streamed text kept per request for a continuation; a longer answer is no "
        "longer resumable (default 256 KiB)",
    )
    p.add_argument("--tls-certfile", help="serve HTTPS with this PEM certificate (chain)")
    p.add_argument("--tls-keyfile", help="the PEM private key of --tls-certfile, unencrypted")
    p.add_argument(
        "--tls-check-seconds",
        type=float,
        default=5.0,
        help="how often to look for replaced TLS files (SIGHUP reloads at once; default 5)",
    )
    p.add_argument(
        "--wake-wait",
        type=float,
        default=0.0,
        help="seconds to hold a request while no replica is ready (a service waking from "
        "zero) before 503 with Retry-After; 0 (default) answers 503 at once",
    )
    p.add_argument(
        "--wake-queue",
        type=int,
        default=100,
        help="requests held at once while no replica is ready; one more gets 503 at once",
    )
    p.add_argument(
        "--session-header",
        default="X-Session-Id",
        help="session_affinity policy: the request header whose value is the session key "
        "(in controller mode the service's session_header overrides this)",
    )
    p.add_argument(
        "--affinity-balance-factor",
        type=float,
        default=DEFAULT_BALANCE_FACTOR,
        help="session_affinity policy: a session leaves its replica while that one holds "
        "c times the mean requests in flight (default 1.25, >= 1)",
    )
    p.add_argument(
        "--event-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="uvloop (default, faster) or the standard asyncio loop",
    )
    return p


def normalise_replica_url(url: str) -> str:
    """Return ``http://host:port`` or raise ConfigError naming the bad URL."""
    candidate = url.strip().rstrip("/")
    if "://" not in candidate:
        candidate = "http://" + candidate
    parts = urlsplit(candidate)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(
            f"replica URL {url!r} must look like http://host:port (https is not proxied)"
        )
    port = parts.port or 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{port}"


def _check_client_limits(args: argparse.Namespace) -> None:
    if args.request_head_timeout <= 0:
        raise ConfigError("--request-head-timeout must be > 0 seconds")
    if args.max_head_bytes < 1024 or args.max_connections < 1:
        raise ConfigError("--max-head-bytes must be >= 1024 and --max-connections >= 1")
    if args.max_resumes < 1 or args.resume_text_bytes < 1:
        raise ConfigError("--max-resumes and --resume-text-bytes must be >= 1")
    if args.wake_wait < 0 or args.wake_queue < 0:
        raise ConfigError("--wake-wait and --wake-queue must be >= 0")
    if not HEADER_NAME.match(args.session_header):
        raise ConfigError(f"--session-header {args.session_header!r} is not a header name")
    if not args.affinity_balance_factor >= 1.0:
        raise ConfigError("--affinity-balance-factor must be >= 1 (1.25 is usual)")
    if bool(args.tls_certfile) != bool(args.tls_keyfile):
        raise ConfigError("give both --tls-certfile and --tls-keyfile, or neither")
    if args.tls_check_seconds <= 0:
        raise ConfigError("--tls-check-seconds must be > 0")


def parse_config(argv: list[str] | None = None) -> LBConfig:
    """Parse and cross-check the flags; raise ConfigError with the fix on a bad combination."""
    args = _parser().parse_args(argv)
    controller_flags = (args.controller_url, args.service, args.token_file)
    if args.replicas and any(controller_flags):
        raise ConfigError(
            "use either --replicas (standalone) or --controller-url/--service/--token-file"
        )
    if not args.replicas and not all(controller_flags):
        raise ConfigError(
            "give --replicas URL,URL for standalone mode, or all of --controller-url, "
            "--service and --token-file to follow a controller"
        )
    replicas = tuple(
        normalise_replica_url(u) for u in (args.replicas or "").split(",") if u.strip()
    )
    if args.replicas is not None and not replicas:
        raise ConfigError("--replicas is empty; give at least one http://host:port")
    if args.max_attempts < 1 or args.workers < 1 or args.sync_interval <= 0:
        raise ConfigError("--max-attempts and --workers must be >= 1 and --sync-interval > 0")
    _check_client_limits(args)
    return LBConfig(
        host=args.host,
        port=args.port,
        policy=args.policy,
        replicas=replicas,
        controller_urls=tuple(
            u.strip().rstrip("/") for u in (args.controller_url or "").split(",") if u.strip()
        ),
        service=args.service,
        token_file=args.token_file,
        sync_interval=args.sync_interval,
        workers=args.workers,
        max_attempts=args.max_attempts,
        connect_timeout=args.connect_timeout,
        response_timeout=args.response_timeout,
        keepalive_timeout=args.keepalive_timeout,
        request_head_timeout=args.request_head_timeout,
        max_head_bytes=args.max_head_bytes,
        max_connections=args.max_connections,
        replay_buffer_bytes=args.replay_buffer_bytes,
        event_loop=args.event_loop,
        resume_streams=args.resume_streams,
        max_resumes=args.max_resumes,
        resume_text_bytes=args.resume_text_bytes,
        wake_wait=args.wake_wait,
        wake_queue=args.wake_queue,
        session_header=args.session_header.lower(),
        affinity_balance_factor=args.affinity_balance_factor,
        tls_certfile=args.tls_certfile,
        tls_keyfile=args.tls_keyfile,
        tls_check_seconds=args.tls_check_seconds,
    )
