"""`serve down`: services by name or all of them, or one replica of a service.

As `sky serve down` takes them: several names, `--all` (asked for unless `-y`), and
`--replica-id N` for one replica, which the service replaces if its target still wants it.
Names are checked before anything is taken down, so a typo in a list stops the whole command.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from controller.api.schemas import ReplicaDown
from controller.cli.app import app
from controller.cli.connect import controller_client, service_path
from controller.cli.errors import err_console, fail, friendly, wide_console
from controller.client import ApiError, ControllerClient
from controller.service_status import ServiceStatus

console = wide_console()


@app.command()
@friendly
def down(
    names: list[str] | None = typer.Argument(None, help="services to take down"),
    all_: bool = typer.Option(False, "--all", "-a", help="every service (asks first unless -y)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    replica_id: int | None = typer.Option(
        None,
        "--replica-id",
        min=1,
        help="take down only this replica of the one service named (it is replaced if the "
        "service's target still wants it)",
    ),
    purge: bool = typer.Option(
        False,
        "--purge",
        help="forget a service whose cleanup failed; with --replica-id, forget the replica "
        "after one attempt to terminate its instance",
    ),
    detach: bool = typer.Option(False, "-d", "--detach", help="return without waiting"),
) -> None:
    """Terminate services' replicas and load balancers and forget them, or one replica."""
    names = list(dict.fromkeys(names or []))
    if all_ and names:
        raise fail("name services or pass --all, not both")
    if replica_id is not None:
        if all_ or len(names) != 1:
            raise fail("--replica-id takes one service: serve down NAME --replica-id N")
        client = controller_client(start=False)
        _down_replica(client, names[0], replica_id, purge, detach)
        return
    if not names and not all_:
        raise fail("say which services: serve down NAME [NAME...], or serve down --all")
    client = controller_client(start=False)
    listed = [s["name"] for s in client.json("GET", "/api/v1/services")]
    if all_:
        if not listed:
            console.print("No services to take down.")
            return
        names = listed
        _confirm(names, yes)
    unknown = [n for n in names if n not in listed]
    if unknown:
        raise fail(
            f"no service named {', '.join(unknown)}; nothing was taken down "
            "(`serve status` lists the services)"
        )
    requested = {n: _request_down(client, n, purge) for n in names}
    going = [n for n, status in requested.items() if status != "DELETED"]
    for name in set(names) - set(going):
        console.print(f"Service {name}: DELETED")
    if detach:
        for name in going:
            console.print(f"Service {name}: SHUTTING_DOWN")
        return
    _wait_gone(client, going)


def _confirm(names: list[str], yes: bool) -> None:
    """Ask on stderr and read the answer from stdin (a piped `y` answers too); no answer,
    or no stdin at all, is no."""
    if yes:
        return
    err_console.print(f"Take down {len(names)} service(s): {', '.join(names)}? [y/N]: ", end="")
    try:
        answer = input()
    except EOFError:
        answer = ""
        err_console.print()
    if answer.strip().lower() not in ("y", "yes"):
        raise fail("nothing was taken down (not confirmed; -y takes them down without asking)")


def _request_down(client: ControllerClient, name: str, purge: bool) -> str:
    result: dict[str, Any] = client.json("DELETE", service_path(name), params={"purge": purge})
    return str(result["status"])


def _wait_gone(client: ControllerClient, names: list[str]) -> None:
    left, failed = set(names), {}
    with console.status(f"taking {', '.join(names)} down") as spinner:
        while left:
            listing = {s["name"]: s for s in client.json("GET", "/api/v1/services")}
            for name in sorted(left):
                svc = listing.get(name)
                if svc is None:
                    left.discard(name)
                    console.print(
                        f"Service [bold]{name}[/] is down: replicas and load balancer stopped."
                    )
                elif svc["status"] == ServiceStatus.FAILED_CLEANUP:
                    left.discard(name)
                    failed[name] = svc["status_reason"]
            alive = sum(len(listing[n]["replicas"]) for n in left if n in listing)
            spinner.update(f"taking {', '.join(sorted(left))} down: {alive} replicas left")
            if left:
                time.sleep(0.5)
    if failed:
        raise fail("; ".join(f"{n}: {why}" for n, why in failed.items()))


def _down_replica(
    client: ControllerClient, name: str, replica_id: int, purge: bool, detach: bool
) -> None:
    path = service_path(name, f"/replicas/{replica_id}")
    result = ReplicaDown.model_validate(client.json("DELETE", path, params={"purge": purge}))
    console.print(result.detail)
    if result.status == "PURGED":
        _say_where_an_instance_is(name, result)
        return
    if detach:
        return
    with console.status(f"replica {replica_id} of {name}: draining, then terminating"):
        while _replica_listed(client, name, replica_id):
            time.sleep(0.5)
    console.print(
        f"Replica {replica_id} of [bold]{name}[/] is terminated; a replacement is launched if "
        f"the target still wants one (`serve status {name}`)."
    )


def _say_where_an_instance_is(name: str, result: ReplicaDown) -> None:
    if not result.instance_id:
        return
    tags = " ".join(f"{k}={v}" for k, v in result.tags.items())
    where = f"find it in {result.location} by its tags: {tags}"
    orphans = (
        f"while {name} lives, the controller terminates tagged instances no replica owns "
        "at its orphan scans"
    )
    if result.terminated:
        console.print(f"If anything of instance {result.instance_id} is left, {where}.")
    else:
        err_console.print(
            f"[yellow]warning:[/] instance {result.instance_id} may still exist: {where}; "
            f"{orphans}."
        )


def _replica_listed(client: ControllerClient, name: str, replica_id: int) -> bool:
    try:
        replicas = client.json("GET", service_path(name, "/replicas"))
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return any(r["id"] == replica_id for r in replicas)
