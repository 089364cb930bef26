"""`serve market show | set | replay | random | manual`: the local simulated spot market."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from controller.cli.app import app
from controller.cli.errors import fail, friendly, wide_console
from controller.client import ControllerClient
from controller.settings import Settings

console = wide_console()
market_app = typer.Typer(
    help="The local provisioner's simulated spot market.", no_args_is_help=True
)
app.add_typer(market_app, name="market")


def _client() -> ControllerClient:
    client = ControllerClient(Settings.from_env())
    if not client.healthy():
        raise fail(f"no controller answers at {client.url}; `serve controller start` starts one")
    return client


def _print(market: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(market, indent=2))
        return
    table = Table(title="Local spot market", title_justify="left", box=None, header_style="bold")
    for col in ("ZONE", "SPOT CAPACITY", "SPOT IN USE", "SPOT $/H", "ON-DEMAND $/H", "NOTICE"):
        table.add_column(col)
    driver_notice = float(market["driver"].get("notice_seconds") or 0.0)
    for z in market["zones"]:
        cap = "unlimited" if z["spot_capacity"] is None else str(z["spot_capacity"])
        table.add_row(
            z["zone"],
            cap,
            str(z["spot_in_use"]),
            f"{z['spot_price']:.2f}",
            f"{z['on_demand_price']:.2f}",
            _notice_text(z.get("notice_seconds") or driver_notice),
        )
    console.print(table)
    driver = market["driver"]
    if driver.get("mode") == "trace":
        console.print(f"driven by trace {driver['path']} at {driver['speedup']:g}x")
    elif driver.get("mode") == "random":
        console.print(f"driven by a random model (seed {driver['seed']})")
    else:
        console.print("set by hand (`serve market set ZONE --spot-capacity N`)")


def _notice_text(seconds: float) -> str:
    return f"{seconds:g}s" if seconds else "none"


NOTICE_HELP = (
    "warn spot replicas this many seconds before taking them (as clouds do: AWS 120, "
    "GCP and Azure about 30); 0 takes them at once"
)


@market_app.command("show")
@friendly
def show(as_json: bool = typer.Option(False, "--json")) -> None:
    """Zones with their spot capacity, spot replicas in use, and prices."""
    _print(_client().json("GET", "/api/v1/market"), as_json)


@market_app.command("set")
@friendly
def set_zone(
    zone: str = typer.Argument(..., help="e.g. local-a"),
    spot_capacity: int | None = typer.Option(
        None, "--spot-capacity", min=0, help="spot replicas the zone can hold"
    ),
    unlimited: bool = typer.Option(False, "--unlimited", help="no spot capacity limit"),
    spot_price: float | None = typer.Option(None, "--spot-price", min=0),
    on_demand_price: float | None = typer.Option(None, "--on-demand-price", min=0),
    boot_seconds: float | None = typer.Option(
        None, "--boot-seconds", min=0, help="new instances stay PENDING this long"
    ),
    api_delay_seconds: float | None = typer.Option(
        None, "--api-delay", min=0, help="each launch/terminate call takes this long"
    ),
    notice_seconds: float | None = typer.Option(
        None, "--notice", min=0, max=3600, help=NOTICE_HELP
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Set a zone by hand. Lowering capacity preempts its newest spot replicas: at once, or
    `--notice` seconds after warning them."""
    changes = (
        spot_capacity,
        spot_price,
        on_demand_price,
        boot_seconds,
        api_delay_seconds,
        notice_seconds,
    )
    if not unlimited and all(c is None for c in changes):
        raise fail(
            "say what to change: --spot-capacity N, --unlimited, --spot-price, "
            "--on-demand-price, --boot-seconds, --api-delay or --notice"
        )
    client = _client()
    current = next(
        (z for z in client.json("GET", "/api/v1/market")["zones"] if z["zone"] == zone), None
    )
    capacity = (
        None
        if unlimited
        else (spot_capacity if spot_capacity is not None else (current or {}).get("spot_capacity"))
    )
    body = {
        "spot_capacity": capacity,
        "spot_price": spot_price,
        "on_demand_price": on_demand_price,
        "boot_seconds": boot_seconds,
        "api_delay_seconds": api_delay_seconds,
        "notice_seconds": notice_seconds,
    }
    _print(client.json("PUT", f"/api/v1/market/zones/{zone}", json=body), as_json)


@market_app.command("replay")
@friendly
def replay(
    trace: Path = typer.Argument(..., help="a directory of spot traces (../shared/traces/aws1)"),
    speedup: float = typer.Option(600.0, "--speedup", help="trace seconds per real second"),
    offset_hours: float = typer.Option(0.0, "--offset-hours", help="start this far in"),
    notice_seconds: float = typer.Option(0.0, "--notice", min=0, max=3600, help=NOTICE_HELP),
) -> None:
    """Drive zone capacities from a recorded spot trace, faster than real time."""
    body = {
        "mode": "trace",
        "path": str(trace.resolve()),
        "speedup": speedup,
        "offset_seconds": offset_hours * 3600,
        "notice_seconds": notice_seconds,
    }
    _print(_client().json("PUT", "/api/v1/market/driver", json=body), False)


@market_app.command("random")
@friendly
def random_model(
    seed: int = typer.Option(0, "--seed"),
    capacity: int = typer.Option(4, "--capacity", help="spot capacity while available"),
    mean_available: float = typer.Option(300.0, "--mean-available", help="seconds"),
    mean_unavailable: float = typer.Option(60.0, "--mean-unavailable", help="seconds"),
    notice_seconds: float = typer.Option(0.0, "--notice", min=0, max=3600, help=NOTICE_HELP),
) -> None:
    """Drive zone capacities with a seeded random on/off model."""
    body = {
        "mode": "random",
        "seed": seed,
        "capacity": capacity,
        "mean_available_seconds": mean_available,
        "mean_unavailable_seconds": mean_unavailable,
        "notice_seconds": notice_seconds,
    }
    _print(_client().json("PUT", "/api/v1/market/driver", json=body), False)


@market_app.command("manual")
@friendly
def manual() -> None:
    """Stop any driver; capacities stay where they are until set by hand."""
    _print(_client().json("PUT", "/api/v1/market/driver", json={"mode": "manual"}), False)
