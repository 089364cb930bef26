"""The human side of `serve status`: SkyPilot's two tables, colour, and a cost line."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {
    "READY": "green",
    "REPLICA_INIT": "cyan",
    "CONTROLLER_INIT": "cyan",
    "STARTING": "cyan",
    "PROVISIONING": "cyan",
    "PENDING": "cyan",
    "NOT_READY": "yellow",
    "NO_REPLICA": "yellow",
    "PREEMPTED": "yellow",
    "DRAINING": "yellow",
    "SHUTTING_DOWN": "magenta",
}


def status_text(status: str) -> Text:
    style = STATUS_STYLE.get(status, "red" if "FAILED" in status else "white")
    return Text(status, style=style)


def replica_status_text(replica: dict[str, Any], now: float | None = None) -> Text:
    """A draining replica says how long the cloud leaves it."""
    text = status_text(replica["status"])
    deadline = replica.get("drain_deadline")
    if replica["status"] == "DRAINING" and deadline:
        text.append(f" ({duration(deadline - (now or time.time()))} left)", style="dim")
    return text


def ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    return duration((now or time.time()) - ts) + " ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(max(0, seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    text = " ".join(p for p in parts if p)
    return text if days or hours else (f"{text} {s}s".strip() if minutes else f"{s}s")


def services_table(services: list[dict[str, Any]]) -> Table:
    table = Table(title="Services", title_justify="left", box=None, header_style="bold")
    for col in ("NAME", "VERSION", "UPTIME", "STATUS", "REPLICAS", "ENDPOINT", "COST/HR", "SAVED"):
        table.add_column(col)
    for svc in services:
        cost = svc["cost"]
        saved = cost.get("savings_fraction")
        table.add_row(
            svc["name"],
            str(svc["version"]),
            duration(svc.get("uptime_seconds")),
            status_text(svc["status"]),
            f"{svc['ready_replicas']}/{svc['target_replicas']}",
            endpoint_text(svc),
            f"${cost['per_hour']:.2f} (od ${cost['on_demand_per_hour']:.2f})",
            f"{saved * 100:.0f}%" if saved is not None else "-",
        )
    return table


def endpoint_text(svc: dict[str, Any]) -> Text:
    endpoint = svc.get("endpoint") or "-"
    if svc.get("endpoint_down"):
        return Text(f"{endpoint} (DOWN)", style="bold red")
    return Text(endpoint)


def replicas_table(services: list[dict[str, Any]], now: float | None = None) -> Table:
    table = Table(title="Service Replicas", title_justify="left", box=None, header_style="bold")
    for col in (
        "SERVICE_NAME",
        "ID",
        "VERSION",
        "ENDPOINT",
        "LAUNCHED",
        "RESOURCES",
        "STATUS",
        "REGION",
        "ZONE",
    ):
        table.add_column(col)
    for svc in services:
        for r in svc["replicas"]:
            table.add_row(
                svc["name"],
                str(r["id"]),
                str(r["version"]),
                r.get("url") or "-",
                ago(r.get("launched_at") or r.get("created_at"), now),
                r["resources"],
                replica_status_text(r, now),
                f"{r['cloud']}/{r['region']}",
                r["zone"],
            )
    return table


def tokens_table(services: list[dict[str, Any]]) -> Table | None:
    """Per service and market, what its answers said they used; None while no service has
    had a token (a service whose replicas do not speak OpenAI never shows one)."""
    metered = [svc for svc in services if svc.get("tokens", {}).get("tokens_so_far")]
    if not metered:
        return None
    table = Table(title="Tokens (last 5 min)", title_justify="left", box=None, header_style="bold")
    for col in (
        "SERVICE_NAME",
        "MARKET",
        "TOKENS/S",
        "PROMPT/S",
        "OUTPUT/S",
        "COST/HR",
        "$/M TOKENS",
        "SO FAR",
    ):
        table.add_column(col, justify="left" if col in ("SERVICE_NAME", "MARKET") else "right")
    for svc in metered:
        tokens = svc["tokens"]
        for market, figures in [*sorted(tokens["markets"].items()), ("all", tokens)]:
            per_million = figures.get("usd_per_million_tokens")
            table.add_row(
                svc["name"],
                Text(market, style="bold" if market == "all" else ""),
                f"{figures['tokens_per_second']:,.1f}",
                f"{figures['prompt_tokens_per_second']:,.1f}",
                f"{figures['completion_tokens_per_second']:,.1f}",
                f"${figures['cost_per_hour']:.2f}",
                f"${per_million:,.2f}" if per_million is not None else "-",
                f"{figures['tokens_so_far']:,}",
            )
    return table


def events_table(events: list[dict[str, Any]]) -> Table:
    table = Table(title="Events", title_justify="left", box=None, header_style="bold")
    for col in ("TIME", "KIND", "REPLICA", "MESSAGE"):
        table.add_column(col)
    for e in events:
        stamp = time.strftime("%H:%M:%S", time.localtime(e["at"]))
        message = e["message"]
        if e.get("count", 1) > 1 and e.get("last_at"):
            last = time.strftime("%H:%M:%S", time.localtime(e["last_at"]))
            message += f" (x{e['count']}, last {last})"
        table.add_row(stamp, e["kind"], str(e["replica_id"] or "-"), message)
    return table


def reasons(services: list[dict[str, Any]]) -> Text:
    lines = Text()
    for svc in services:
        if (svc["status"] != "READY" or svc.get("endpoint_down")) and svc.get("status_reason"):
            lines.append(f"{svc['name']}: ", style="bold")
            lines.append(svc["status_reason"] + "\n")
        if svc.get("on_demand_only"):
            lines.append(f"{svc['name']}: ", style="bold")
            lines.append(f"on-demand only: {svc['on_demand_only']}\n", style="yellow")
        for r in svc["replicas"]:
            if "FAILED" in r["status"] or r["status"] in ("PREEMPTED", "DRAINING"):
                lines.append(f"{svc['name']} replica {r['id']} {r['status']}: ", style="dim")
                lines.append(r["status_reason"] + "\n", style="dim")
    return lines


def print_status(console: Console, services: list[dict[str, Any]], events: list[Any]) -> None:
    parts: list[Any] = [services_table(services), Text(""), replicas_table(services)]
    if (tokens := tokens_table(services)) is not None:
        parts += [Text(""), tokens]
    notes = reasons(services)
    if notes:
        parts += [Text(""), notes]
    if events:
        parts += [Text(""), events_table(events)]
    console.print(Group(*parts))
