"""`serve controller start | stop | status` and `serve check`."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from controller.cli.app import app
from controller.cli.errors import fail, friendly, wide_console
from controller.client import (
    ControllerClient,
    pid_alive,
    read_state,
    start_controller,
    stop_controller,
)
from controller.settings import Settings

console = wide_console()
controller_app = typer.Typer(help="Manage the controller daemon.", no_args_is_help=True)
app.add_typer(controller_app, name="controller")


@controller_app.command("start")
@friendly
def start() -> None:
    """Start the controller in the background (no-op if it runs)."""
    settings = Settings.from_env()
    with console.status("starting the controller"):
        url = start_controller(settings)
    console.print(f"Controller running at {url}")


@controller_app.command("stop")
@friendly
def stop() -> None:
    """Stop the controller. Replicas and load balancers keep running and are picked up
    again by the next start."""
    pid = stop_controller(Settings.from_env())
    console.print("Controller stopped." if pid else "No controller was running.")


@controller_app.command("status")
@friendly
def controller_status(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Whether the controller runs, where, and on which database."""
    settings = Settings.from_env()
    state = read_state(settings) or {}
    client = ControllerClient(settings)
    healthy = client.healthy()
    info = {
        "running": healthy,
        "url": client.url,
        "pid": state.get("pid") if state.get("pid") and pid_alive(int(state["pid"])) else None,
        "database": state.get("database") or settings.database_url,
        "home": str(settings.home),
    }
    if healthy:
        info.update(client.json("GET", "/api/v1/controller"))
        info["running"] = True
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    if not healthy:
        console.print(f"Controller: [yellow]not running[/] (would listen on {info['url']})")
        return
    console.print(
        f"Controller: [green]running[/] at {info['url']} (pid {info['pid']}), "
        f"database {info['database']}"
    )


@app.command()
@friendly
def check() -> None:
    """Which clouds are enabled and usable, and what to do about those that are not."""
    from provisioners.registry import KNOWN, UnknownCloud, make_provisioner

    settings = Settings.from_env()
    table = Table(box=None, header_style="bold")
    for col in ("CLOUD", "ENABLED", "USABLE", "DETAIL"):
        table.add_column(col)
    for cloud in KNOWN:
        enabled = cloud in settings.clouds
        try:
            result = make_provisioner(cloud, settings.local_root, settings.log_dir).check()
        except (ImportError, UnknownCloud) as exc:
            table.add_row(cloud, _yes(enabled), "[red]no[/]", f"adapter unavailable: {exc}")
            continue
        extra = result.hint and not result.usable and result.hint not in result.reason
        detail = result.reason + (f" - {result.hint}" if extra else "")
        table.add_row(cloud, _yes(enabled), _yes(result.usable), detail)
    console.print(table)
    console.print(f"Enabled clouds come from SERVE_CLOUDS (now: {','.join(settings.clouds)}).")
    unknown = [c for c in settings.clouds if c not in KNOWN]
    if unknown:
        raise fail(f"SERVE_CLOUDS names unknown clouds: {', '.join(unknown)}")


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[dim]no[/]"
