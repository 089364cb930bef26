"""`serve keys create | list | revoke`: the API keys of a service's endpoint.

With keys, the service's load balancer answers only requests carrying
`Authorization: Bearer <key>`; with none, the endpoint is open. A key's value is printed
once, by `create`; the controller keeps only its hash (`controller.api_keys`).
"""

from __future__ import annotations

import json

import typer
from rich.table import Table

from controller.api.schemas import ApiKeyCreated, ApiKeyPublic, ApiKeyRevoked
from controller.cli.app import app
from controller.cli.connect import controller_client, service_path
from controller.cli.errors import err_console, fail, friendly, wide_console
from controller.cli.render import ago

console = wide_console()
keys_app = typer.Typer(
    help="API keys for a service's endpoint (none: the endpoint is open).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@friendly
def create(
    name: str = typer.Argument(..., help="service"),
    label: str = typer.Option("", "--label", help="who or what uses the key (up to 64 chars)"),
    as_json: bool = typer.Option(False, "--json", help="print the key and its id as JSON"),
) -> None:
    """Make a key; it is printed now and never again. It works from each load balancer's
    next sync."""
    raw = controller_client(start=False).json(
        "POST", service_path(name, "/keys"), json={"label": label}
    )
    key = ApiKeyCreated.model_validate(raw)
    if as_json:
        typer.echo(json.dumps(key.model_dump(), indent=2))
        return
    typer.echo(key.key)
    err_console.print(
        f"API key {key.id} ({key.prefix}...) for {name}. Keep it now: it is not shown again. "
        f"Send it as `Authorization: Bearer <key>`; `serve keys revoke {name} {key.id}` ends it."
    )


@keys_app.command("list")
@friendly
def list_keys(
    name: str = typer.Argument(..., help="service"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """The service's keys by id and prefix (never their values)."""
    raw = controller_client(start=False).json("GET", service_path(name, "/keys"))
    keys = [ApiKeyPublic.model_validate(k) for k in raw]
    if as_json:
        typer.echo(json.dumps([k.model_dump() for k in keys], indent=2))
        return
    if not keys:
        console.print(f"{name} has no API keys: its endpoint is open. `serve keys create {name}`")
        return
    table = Table(box=None, header_style="bold")
    for column in ("ID", "PREFIX", "LABEL", "CREATED"):
        table.add_column(column)
    for k in keys:
        table.add_row(str(k.id), f"{k.prefix}...", k.label or "-", ago(k.created_at))
    console.print(table)


@keys_app.command("revoke")
@friendly
def revoke(
    name: str = typer.Argument(..., help="service"),
    key_id: int = typer.Argument(..., min=1, help="the ID `serve keys list` shows"),
) -> None:
    """End a key; each load balancer refuses it from its next sync (2 s by default).
    Revoking the last key opens the endpoint: create the new key first."""
    if key_id > 2**31 - 1:
        raise fail(f"no API key {key_id}: `serve keys list {name}` lists them")
    raw = controller_client(start=False).json("DELETE", service_path(name, f"/keys/{key_id}"))
    key = ApiKeyRevoked.model_validate(raw)
    console.print(f"API key {key.id} ({key.prefix}...) of {name} revoked.")
    if key.keys_left == 0:
        err_console.print(
            f"[yellow]warning:[/] {name} has no API keys left, so its endpoint is open to "
            f"anyone again; `serve keys create {name}` closes it."
        )
