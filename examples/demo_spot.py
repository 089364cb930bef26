"""`make demo-spot`: SpotHedge live on the local simulated spot market.

Starts its own controller (own SERVE_HOME and ports, fast ticks), brings up
examples/hello/spot.yaml (2 replicas + 1 spot hedge, dynamic on-demand fallback), and
while a client keeps sending requests it preempts one zone with a 10 s preemption notice
(the replica drains and is replaced before it is taken), then every zone with the same
notice, then gives the capacity back, showing replicas and events as they change.
Everything is taken down at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
HOME = Path(os.environ.get("DEMO_SERVE_HOME", Path.home() / ".serve-demo-spot"))
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "SERVE_HOME": str(HOME),
    "SERVE_CONTROLLER_PORT": os.environ.get("DEMO_CONTROLLER_PORT", "46599"),
    "SERVE_LB_PORT_START": "30101",
    "SERVE_TICK_SECONDS": "0.5",
    "SERVE_LB_SYNC_SECONDS": "0.5",
}
ENV["SERVE_CONTROLLER_URL"] = f"http://127.0.0.1:{ENV['SERVE_CONTROLLER_PORT']}"
console = Console()
NOTICE = "10"


def serve(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "controller", *args],
        cwd=ROOT,
        env=ENV,
        text=True,
        capture_output=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"serve {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def status() -> dict[str, Any]:
    return json.loads(serve("status", "hello-spot", "--json", "--events"))


class Client(threading.Thread):
    def __init__(self, endpoint: str):
        super().__init__(daemon=True)
        self.endpoint, self.ok, self.failed, self.stop = endpoint, 0, 0, threading.Event()

    def run(self) -> None:
        body = {"messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                try:
                    good = http.post(f"{self.endpoint}/v1/chat/completions", json=body)
                    self.ok, self.failed = (
                        (self.ok + 1, self.failed)
                        if good.status_code == 200
                        else (self.ok, self.failed + 1)
                    )
                except httpx.HTTPError:
                    self.failed += 1
                time.sleep(0.05)


def view(svc: dict[str, Any], client: Client, step: str) -> Group:
    table = Table(box=None, header_style="bold")
    for col in ("ID", "MARKET", "ZONE", "STATUS", "REASON"):
        table.add_column(col)
    for r in svc["replicas"]:
        if r["status"] == "FAILED_PROVISION":
            continue  # refused launches are listed as events
        table.add_row(
            str(r["id"]),
            "spot" if r["spot"] else "[bold]on-demand[/]",
            r["zone"],
            r["status"],
            r["status_reason"][:60],
        )
    events = Table(box=None, header_style="bold", title="latest events", title_justify="left")
    events.add_column("KIND")
    events.add_column("MESSAGE")
    for e in svc.get("events", [])[-8:]:
        events.add_row(e["kind"], e["message"][:90])
    cost = svc["cost"]
    return Group(
        f"[bold cyan]{step}[/]",
        f"service {svc['status']}, target {svc['target_replicas']}, cost ${cost['per_hour']:.2f}/h "
        f"(all on-demand ${cost['on_demand_per_hour']:.2f}/h); client: {client.ok} ok, "
        f"{client.failed} failed",
        table,
        events,
    )


def watch(live: Live, client: Client, step: str, done: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc = status()
        live.update(view(svc, client, step))
        if done(svc):
            time.sleep(1.5)
            live.update(view(status(), client, step))
            return
        time.sleep(0.5)


def count(svc: dict[str, Any], spot: bool) -> int:
    return sum(1 for r in svc["replicas"] if r["spot"] is spot and r["status"] == "READY")


def settled(spot: int, on_demand: int) -> Any:
    def check(svc: dict[str, Any]) -> bool:
        alive = [
            r
            for r in svc["replicas"]
            if r["status"] not in ("PREEMPTED", "FAILED", "FAILED_PROVISION", "SHUTTING_DOWN")
        ]
        return (
            count(svc, True) == spot
            and count(svc, False) == on_demand
            and len(alive) == spot + on_demand
        )

    return check


def main() -> int:
    HOME.mkdir(parents=True, exist_ok=True)
    console.print(f"[dim]demo state in {HOME}; controller on {ENV['SERVE_CONTROLLER_URL']}[/]")
    serve("controller", "start")
    for zone in ("local-a", "local-b", "local-c"):
        serve("market", "set", zone, "--unlimited")
    console.print("$ serve up examples/hello/spot.yaml")
    serve("up", "examples/hello/spot.yaml")
    client = Client(status()["endpoint"])
    client.start()
    try:
        with Live(console=console, refresh_per_second=4) as live:
            watch(live, client, "1. Three spot replicas spread over three zones", settled(3, 0))
            serve("market", "set", "local-a", "--spot-capacity", "0", "--notice", NOTICE)
            watch(
                live,
                client,
                f"2. local-a warns its spot replica {NOTICE} s ahead: it drains (DRAINING) "
                "while its replacement starts, then the cloud takes it",
                settled(3, 0),
            )
            for zone in ("local-b", "local-c"):
                serve("market", "set", zone, "--spot-capacity", "0", "--notice", NOTICE)
            watch(
                live,
                client,
                f"3. No spot anywhere ({NOTICE} s notice): fall back to 2 on-demand replicas",
                settled(0, 2),
            )
            for zone in ("local-a", "local-b", "local-c"):
                serve("market", "set", zone, "--unlimited")
            watch(
                live,
                client,
                "4. Spot is back: return to spot, on-demand replicas go",
                settled(3, 0),
                timeout=90,
            )
    finally:
        client.stop.set()
        console.print("$ serve down hello-spot")
        serve("down", "hello-spot")
        serve("controller", "stop")
    console.print(
        f"client requests: {client.ok} answered, {client.failed} failed "
        "(each preemption came with a notice, so none should fail)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
