"""Throughput and latency of our load balancer against nginx and SkyServe's, on one machine.

Runs, in one go and against the same two fast backends (nginx answering ``200 ok``):
wrk directly on a backend; nginx as a reverse proxy; SkyPilot's ``sky.serve.load_balancer``
fed by a tiny fake controller; ours with 1 and 2 worker processes; then nginx and ours again
serving HTTPS (a throwaway ECDSA P-256 certificate; wrk keeps its connections open, so this is
the cost of encrypting the traffic, with one handshake per connection). Prints requests/s and
p50/p99 at 32 connections, p50 at 1 connection, and the ratios. Start it with ``run.sh``;
``--only ours,TLS`` runs the targets whose name contains one of the words (and the backend
directly, which the ratios need).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for tests.support
from tests.support.tls import self_signed

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORK = HERE / ".work"
DIRECT = "direct (one backend)"
TLS_PAIRS = (
    ("nginx reverse proxy", "nginx reverse proxy (TLS)"),
    ("ours (1 worker, uvloop)", "ours (1 worker, uvloop, TLS)"),
    ("ours (2 workers, uvloop)", "ours (2 workers, uvloop, TLS)"),
)
TlsPair = tuple[Path, Path]


@dataclass(frozen=True)
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    single_p50_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_for(url: str, timeout: float = 60.0) -> None:
    host, port = url.split("//")[1].split("/")[0].split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=0.5) as raw:
                sock = _unverified().wrap_socket(raw) if url.startswith("https:") else raw
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer 200 within {timeout:.0f}s")


@contextmanager
def process(args: list[str], log_name: str, env: dict[str, str] | None = None) -> Iterator[None]:
    log = (WORK / log_name).open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def nginx_conf(listen_ports: list[int], body: str, workers: str, tls: bool = False) -> str:
    listen = " ssl" if tls else ""
    servers = "\n".join(
        f"  server {{ listen 127.0.0.1:{port}{listen}; {body} }}" for port in listen_ports
    )
    return f"""
worker_processes {workers};
pid {WORK}/nginx-{listen_ports[0]}.pid;
error_log {WORK}/nginx-{listen_ports[0]}.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 100000;
{servers}
  UPSTREAM
}}
"""


@contextmanager
def nginx(name: str, conf: str) -> Iterator[None]:
    path = WORK / f"{name}.conf"
    path.write_text(conf)
    with process(["nginx", "-c", str(path), "-p", str(WORK), "-g", "daemon off;"], f"{name}.log"):
        yield


def backends_conf(ports: list[int]) -> str:
    body = 'location / { default_type text/plain; return 200 "ok"; }'
    return nginx_conf(ports, body, "1").replace("UPSTREAM", "")


def proxy_conf(port: int, backends: list[int], tls: TlsPair | None = None) -> str:
    servers = " ".join(f"server 127.0.0.1:{b};" for b in backends)
    upstream = f"upstream replicas {{ {servers} keepalive 128; }}"
    body = (
        "location / { proxy_pass http://replicas; proxy_http_version 1.1; "
        'proxy_set_header Connection ""; }'
    )
    if tls is not None:
        body = f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}; {body}"
    return nginx_conf([port], body, "auto", tls is not None).replace("UPSTREAM", upstream)


class _SkyController(BaseHTTPRequestHandler):
    replica_urls: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps({"replica_info": {u: {} for u in self.replica_urls}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def fake_sky_controller(replica_urls: list[str]) -> Iterator[str]:
    _SkyController.replica_urls = replica_urls
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SkyController)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def wrk(url: str, connections: int, seconds: int) -> tuple[float, float, float, int]:
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _percentile(out, "50%")
    p99 = _percentile(out, "99%")
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|timeout) (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+)", out)
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return rps, p50, p99, errors


def _percentile(out: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def measure(name: str, url: str, seconds: int) -> Result:
    wait_for(url)
    wrk(url, 32, 2)
    rps, p50, p99, errors = wrk(url, 32, seconds)
    _, single, _, single_errors = wrk(url, 1, max(seconds // 2, 3))
    result = Result(name, rps, p50, p99, single, errors + single_errors)
    print(
        f"  {name:<28} {rps:>9.0f} req/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
        f"1-conn p50 {single:6.3f} ms  errors {result.errors}",
        flush=True,
    )
    return result


Target = tuple[str, Callable[[], Result]]


def run(sky_python: str | None, our_python: str, seconds: int, only: list[str]) -> list[Result]:
    WORK.mkdir(exist_ok=True)
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    tls = self_signed(WORK, ecdsa=True, stem="bench-")
    targets: list[Target] = [
        (DIRECT, lambda: measure(DIRECT, urls[0] + "/", seconds)),
        ("nginx reverse proxy", lambda: _measure_nginx(ports, None, seconds)),
    ]
    if sky_python:
        targets.append(
            ("SkyServe load balancer", lambda: _measure_skyserve(sky_python, urls, seconds))
        )
    for client in ("httpx", "aiohttp"):
        usual = functools.partial(_measure_usual_stack, our_python, urls, client, seconds)
        targets.append((f"uvicorn + {client} proxy", usual))
    for workers, loop in ((1, "uvloop"), (2, "uvloop"), (1, "asyncio")):
        targets.append(_ours(our_python, urls, workers, loop, seconds, None))
    targets.append(("nginx reverse proxy (TLS)", lambda: _measure_nginx(ports, tls, seconds)))
    for workers in (1, 2):
        targets.append(_ours(our_python, urls, workers, "uvloop", seconds, tls))
    chosen = [t for t in targets if t[0] == DIRECT or not only or any(w in t[0] for w in only)]
    with nginx("backends", backends_conf(ports)):
        return [start() for _, start in chosen]


def _measure_nginx(ports: list[int], tls: TlsPair | None, seconds: int) -> Result:
    port = free_port()
    name, scheme = (
        ("nginx reverse proxy (TLS)", "https") if tls else ("nginx reverse proxy", "http")
    )
    with nginx(f"proxy-{scheme}", proxy_conf(port, ports, tls)):
        return measure(name, f"{scheme}://127.0.0.1:{port}/", seconds)


def _ours(
    python: str, urls: list[str], workers: int, loop: str, seconds: int, tls: TlsPair | None
) -> Target:
    name = f"ours ({workers} worker{'s' if workers > 1 else ''}, {loop}{', TLS' if tls else ''})"
    return name, lambda: _measure_ours(python, urls, workers, loop, seconds, tls, name)


def _measure_ours(
    python: str,
    urls: list[str],
    workers: int,
    loop: str,
    seconds: int,
    tls: TlsPair | None,
    name: str,
) -> Result:
    port = free_port()
    flags = f"--host 127.0.0.1 --workers {workers} --event-loop {loop}".split()
    if tls is not None:
        flags += ["--tls-certfile", str(tls[0]), "--tls-keyfile", str(tls[1])]
    args = [python, "-m", "load_balancer", "--port", str(port), *flags]
    args += ["--replicas", ",".join(urls)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    scheme = "https" if tls else "http"
    with process(args, f"ours-{workers}-{loop}-{scheme}.log", env):
        return measure(name, f"{scheme}://127.0.0.1:{port}/", seconds)


def _measure_usual_stack(python: str, urls: list[str], client: str, seconds: int) -> Result:
    port = free_port()
    args = [python, str(HERE / "usual_stack_proxy.py"), str(port), ",".join(urls), client]
    with process(args, f"usual-stack-{client}.log"):
        return measure(f"uvicorn + {client} proxy", f"http://127.0.0.1:{port}/", seconds)


def _measure_skyserve(sky_python: str, urls: list[str], seconds: int) -> Result:
    port = free_port()
    with fake_sky_controller(urls) as controller:
        args = [
            sky_python,
            "-m",
            "sky.serve.load_balancer",
            "--controller-addr",
            controller,
            "--load-balancer-port",
            str(port),
        ]
        with process(args, "skyserve.log"):
            return measure("SkyServe load balancer", f"http://127.0.0.1:{port}/", seconds)


def report(results: list[Result]) -> str:
    by_name = {r.name: r for r in results}
    lines = [
        "| target | req/s (32 conn) | p50 ms | p99 ms | p50 ms (1 conn) | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.single_p50_ms:.3f} "
        f"| {r.errors} |"
        for r in results
    ]
    lines.append("")
    plain = [r for r in results if r.name.startswith("ours") and "TLS" not in r.name]
    if plain:
        lines += _versus_others(by_name, max(plain, key=lambda r: r.rps))
    default = by_name.get("ours (1 worker, uvloop)")
    if default is not None:
        added_us = (default.single_p50_ms - by_name[DIRECT].single_p50_ms) * 1000
        lines.append(
            f"added p50 at 1 connection, default config (ours - direct): {added_us:.0f} us"
        )
    return "\n".join(lines + _tls_lines(by_name))


def _versus_others(by_name: dict[str, Result], ours: Result) -> list[str]:
    lines = [f"best of ours (plain HTTP): {ours.name}"]
    if "SkyServe load balancer" in by_name:
        sky = by_name["SkyServe load balancer"]
        lines.append(f"ours/skyserve throughput: {ours.rps / sky.rps:.1f}x")
    nginx_r = by_name.get("nginx reverse proxy")
    if nginx_r is not None:
        lines.append(
            f"ours/nginx throughput: {ours.rps / nginx_r.rps:.2f} (nginx is "
            f"{nginx_r.rps / ours.rps:.1f}x ours)"
        )
    return lines


def _tls_lines(by_name: dict[str, Result]) -> list[str]:
    """What serving HTTPS costs each proxy, next to the same proxy on plain HTTP."""
    lines = []
    for plain_name, tls_name in TLS_PAIRS:
        plain, tls = by_name.get(plain_name), by_name.get(tls_name)
        if plain is None or tls is None:
            continue
        added_us = (tls.single_p50_ms - plain.single_p50_ms) * 1000
        lines.append(
            f"{tls_name}: {tls.rps / plain.rps:.0%} of its plain-HTTP throughput; "
            f"p50 at 1 connection {added_us:+.0f} us"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sky-python", help="python of a venv with skypilot; omit to skip it")
    parser.add_argument("--our-python", default=sys.executable)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration at 32 connections")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated words: run only targets whose name contains one (e.g. ours,TLS)",
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found; run benchmarks/lb/run.sh, which installs it")
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}", flush=True)
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    results = run(args.sky_python, args.our_python, args.seconds, only)
    print()
    print(report(results))


if __name__ == "__main__":
    main()
