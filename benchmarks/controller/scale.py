"""One controller, N services of M replicas each: what it costs and how long things take.

    .venv/bin/python benchmarks/controller/scale.py --services 100 --replicas 20 \\
        [--database URL] [--seconds 60] [--json]

A real controller process runs with a test-only cloud (`tests/support/scale_cloud.py`:
instances appear at once, every replica answers from one shared server in its own
process), so what is measured is the controller's own work. Load balancers are not started
by the controller (`SERVE_START_LOAD_BALANCERS=0`); instead this script plays N of them,
each syncing every 2 s as a real one does, and an operator asking `GET /api/v1/services`
twice a second. Once every service is READY, it measures over `--seconds`:

- `tick_p50_ms`, `tick_p99_ms`: one service's reconcile tick;
- `cycle_p99_s`: the time for every service to be ticked once (from the start of a round,
  every 2 s, until its last tick is done; over 2 s means rounds overlap and services wait);
- `tick_interval_p99_s`: the time between two ticks of a service (the 2 s period plus
  queueing);
- `probe_p99_ms`: one readiness probe;
- `api_services_p99_ms`, `lb_sync_p99_ms`: as seen by the client;
- `controller_rss_mb`, `controller_cpu_percent` (of one core, over the window).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from controller.timings import quantile  # noqa: E402
from tests.support.databases import postgres_schema  # noqa: E402
from tests.support.processes import ControllerProcess, Env, wait_until  # noqa: E402

SPEC = {
    "service": {
        "readiness_probe": {"path": "/health", "initial_delay_seconds": 600},
        "replicas": 1,
    },
    "resources": {"ports": 8080},
    "run": "serve-forever",
}
SYNC_PERIOD = 2.0
OPERATOR = """
import json, sys, time
import httpx
url, seconds = sys.argv[1], float(sys.argv[2])
latencies = []
end = time.monotonic() + seconds
with httpx.Client(base_url=url, timeout=60) as api:
    while time.monotonic() < end:
        began = time.monotonic()
        assert api.get("/api/v1/services").status_code == 200
        latencies.append(time.monotonic() - began)
        time.sleep(0.5)
print(json.dumps(latencies))
"""


def main() -> int:
    args = _args()
    if args.database == "postgres":  # a fresh schema in SERVE_TEST_POSTGRES_URL's database
        with postgres_schema() as url:
            result = run(args.services, args.replicas, url, args.seconds)
    else:
        result = run(args.services, args.replicas, args.database, args.seconds)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def run(services: int, replicas: int, database: str | None, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.support.scale_cloud", "0"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            replica_url = server.stdout.readline().strip()
            env = Env(
                home=root / "home",
                database_url=database or f"sqlite:///{root / 'serve.db'}",
                extra={
                    "SERVE_CLOUDS": "scale",
                    "SERVE_CLOUD_PLUGINS": "scale=tests.support.scale_cloud:factory",
                    "SERVE_SCALE_REPLICA_URL": replica_url,
                    "SERVE_START_LOAD_BALANCERS": "0",
                    "SERVE_TICK_SECONDS": "2",
                    "SERVE_LB_SYNC_SECONDS": "2",
                    "SERVE_ORPHAN_SCAN_SECONDS": "60",
                    "SERVE_LOG_LEVEL": "WARNING",
                },
            )
            proc = ControllerProcess(env).start()
            try:
                return _measure(env, proc, services, replicas, seconds)
            finally:
                proc.kill()
        finally:
            server.kill()


def _measure(
    env: Env, proc: ControllerProcess, services: int, replicas: int, seconds: float
) -> dict[str, Any]:
    names = [f"svc{i:04d}" for i in range(services)]
    spec = {**SPEC, "service": {**SPEC["service"], "replicas": replicas}}  # type: ignore[dict-item]
    began = time.monotonic()
    with httpx.Client(base_url=env.url, headers=env.auth(), timeout=60) as api:
        for name in names:
            resp = api.post("/api/v1/services", json={"name": name, "spec": spec})
            assert resp.status_code == 201, resp.text
        wait_until(
            lambda: _all_ready(api, replicas, services),
            f"{services} services x {replicas} replicas READY",
            timeout=max(120.0, services * replicas / 20),
            every=1.0,
        )
        ready_after = time.monotonic() - began
        since = time.time()
        cpu_before = _cpu_seconds(proc)
        window = _Window(env, names, seconds)
        window.run()
        cpu = _cpu_seconds(proc) - cpu_before
        timings = api.get("/api/v1/controller/timings", params={"since": since}).json()
    return {
        "services": services,
        "replicas_per_service": replicas,
        "database": "postgres" if env.database_url.startswith("postgres") else "sqlite",
        "all_ready_after_s": round(ready_after, 1),
        "tick_p50_ms": timings["tick_p50_ms"],
        "tick_p99_ms": timings["tick_p99_ms"],
        "cycle_p99_s": timings["cycle_p99_s"],
        "tick_interval_p99_s": timings["tick_interval_p99_s"],
        "probe_p99_ms": timings["probe_p99_ms"],
        "api_services_p50_ms": _ms(window.api_latencies, 0.5),
        "api_services_p99_ms": _p99_ms(window.api_latencies),
        "lb_sync_p99_ms": _p99_ms(window.sync_latencies),
        "lb_syncs": len(window.sync_latencies),
        "controller_rss_mb": _rss_mb(proc),
        "controller_cpu_percent": round(100 * cpu / seconds, 1),
    }


class _Window:
    """N simulated load balancers syncing every 2 s, and an operator listing services."""

    def __init__(self, env: Env, names: list[str], seconds: float):
        self.env, self.names, self.seconds = env, names, seconds
        self.api_latencies: list[float] = []
        self.sync_latencies: list[float] = []
        self._stop = threading.Event()

    def run(self) -> None:
        """The operator is a process of its own, as `serve status` is: measured from a
        process that also plays a hundred load balancers, a listing's latency was mostly
        this script waiting for its own interpreter."""
        operator = subprocess.Popen(
            [sys.executable, "-c", OPERATOR, self.env.url, str(self.seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        workers = []
        lanes = 8
        for lane in range(lanes):
            workers.append(threading.Thread(target=self._lbs, args=(self.names[lane::lanes],)))
        for w in workers:
            w.start()
        out, _ = operator.communicate(timeout=self.seconds + 120)
        self._stop.set()
        for w in workers:
            w.join()
        assert operator.returncode == 0, "the operator's listing loop failed"
        self.api_latencies = json.loads(out)

    def _lbs(self, names: list[str]) -> None:
        """These services' load balancers, each syncing once per period."""
        with httpx.Client(base_url=self.env.url, headers=self.env.auth(), timeout=60) as api:
            while not self._stop.is_set():
                period_start = time.monotonic()
                for name in names:
                    began = time.monotonic()
                    resp = api.post(
                        f"/api/v1/services/{name}/lb-sync",
                        json={"request_count": 10, "window_seconds": SYNC_PERIOD},
                    )
                    assert resp.status_code == 200, resp.text
                    self.sync_latencies.append(time.monotonic() - began)
                    if self._stop.is_set():
                        return
                self._stop.wait(max(0.0, SYNC_PERIOD - (time.monotonic() - period_start)))


def _all_ready(api: httpx.Client, replicas: int, services: int) -> bool:
    listed = api.get("/api/v1/services").json()
    return len(listed) == services and all(
        s["status"] == "READY" and s["ready_replicas"] == replicas for s in listed
    )


def _p99_ms(latencies: list[float]) -> float | None:
    return _ms(latencies, 0.99)


def _ms(latencies: list[float], q: float) -> float | None:
    value = quantile(latencies, q)
    return round(value * 1000, 1) if value is not None else None


def _rss_mb(proc: ControllerProcess) -> float:
    assert proc.proc is not None
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _cpu_seconds(proc: ControllerProcess) -> float:
    assert proc.proc is not None
    fields = Path(f"/proc/{proc.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=100)
    p.add_argument("--replicas", type=int, default=20)
    p.add_argument(
        "--database",
        help="SQLAlchemy URL, or `postgres` for a fresh schema in the test Postgres "
        "(default: a fresh SQLite file)",
    )
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--json", action="store_true")
    return p.parse_args()


if __name__ == "__main__":
    raise SystemExit(main())
