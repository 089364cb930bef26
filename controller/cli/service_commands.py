"""`serve up | update | status | down | logs | validate`: service commands over the REST API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import typer

from controller.api.schemas import ServicePublic
from controller.cli.app import app
from controller.cli.bundle_upload import upload_bundle
from controller.cli.errors import fail, friendly, wide_console
from controller.cli.job_values import apply_values, parse_values
from controller.cli.render import print_status
from controller.client import ApiError, ControllerClient, ControllerUnavailable, start_controller
from controller.service_status import ServiceStatus
from controller.settings import Settings
from controller.spec import (
    ServiceSpec,
    check_service_name,
    ignored_fields,
    load_spec_file,
    parse_yaml,
    read_spec_file,
)
from controller.spec.loader import validate_spec
from controller.spec.models import SpecProblem

console = wide_console()


def _load(
    file: Path, envs: list[str] | None = None, secrets: list[str] | None = None
) -> tuple[dict[str, Any], ServiceSpec]:
    """Parse and validate locally, apply `--env`/`--secret`, and make `workdir` absolute
    (relative to the current directory, as SkyPilot does) for display."""
    data = parse_yaml(read_spec_file(file), str(file))
    spec = validate_spec(data, str(file))
    data, spec = apply_values(
        data, spec, parse_values(envs or [], "--env"), parse_values(secrets or [], "--secret")
    )
    if spec.workdir:
        workdir = Path(spec.workdir).expanduser().resolve()
        if not workdir.is_dir():
            raise fail(
                f"workdir {spec.workdir!r} is not a directory (relative paths are taken from "
                f"the current directory, {Path.cwd()})"
            )
        data["workdir"] = str(workdir)
        spec = spec.model_copy(update={"workdir": str(workdir)})
    return data, spec


def _service_path(name: str, suffix: str = "") -> str:
    """The API path of a service. A name that cannot be a service's is refused here, so no
    argument (`..`, `a?target=controller`, `x/../y`) can steer the request elsewhere."""
    try:
        check_service_name(name)
    except SpecProblem as exc:
        raise fail(f"{exc.message}: {exc.hint}") from None
    return f"/api/v1/services/{name}{suffix}"


def _client(start: bool) -> ControllerClient:
    settings = Settings.from_env()
    client = ControllerClient(settings)
    if client.healthy():
        return client
    if not start:
        raise ControllerUnavailable(
            f"no controller answers at {client.url}; `serve controller start` starts one"
        )
    with console.status("Starting the controller in the background..."):
        url = start_controller(settings)
    console.print(f"Controller started at {url} (logs: {settings.log_dir / 'controller.log'})")
    return ControllerClient(settings, url=url)


ENV_HELP = "KEY=VALUE, or KEY to take its value from your environment (repeatable)"


@app.command()
@friendly
def up(
    file: Path = typer.Argument(..., help="service YAML"),
    name: str | None = typer.Option(None, "-n", "--name", help="service name"),
    detach: bool = typer.Option(False, "-d", "--detach", help="return without waiting"),
    env: list[str] = typer.Option([], "--env", help=f"an env for the replicas: {ENV_HELP}"),
    secret: list[str] = typer.Option([], "--secret", help=f"a secret: {ENV_HELP}"),
) -> None:
    """Start a service from a YAML and wait until it answers."""
    data, spec = _load(file, env, secret)
    name = name or spec.name
    if not name:
        raise fail("the service needs a name: pass -n NAME or add `name:` to the YAML")
    for warning in [*ignored_fields(data), *spec.mount_warnings()]:
        console.print(f"[yellow]warning:[/] {warning}")
    client = _client(start=True)
    bundle = upload_bundle(client, spec, console)
    body = {"name": name, "spec": data, "bundle": bundle}
    svc = ServicePublic.model_validate(client.json("POST", "/api/v1/services", json=body))
    console.print(
        f"Service [bold]{name}[/] created (version {svc.version}, "
        f"{svc.target_replicas} replicas). Endpoint: [bold]{svc.endpoint}[/]"
    )
    if detach:
        console.print(f"Watch it with `serve status {name}`.")
        return
    _wait_ready(client, name)


def _wait_ready(client: ControllerClient, name: str) -> None:
    try:
        with console.status("waiting for replicas") as spinner:
            while True:
                svc = ServicePublic.model_validate(client.json("GET", _service_path(name)))
                states = ", ".join(f"{r.id}:{r.status}" for r in svc.replicas) or "-"
                spinner.update(
                    f"{svc.status}: {svc.ready_replicas}/{svc.target_replicas} ready "
                    f"[dim]({states})[/]"
                )
                if svc.status in (ServiceStatus.READY, ServiceStatus.FAILED):
                    break
                time.sleep(1.0)
    except KeyboardInterrupt:
        console.print(f"Stopped waiting; {name} keeps launching. `serve status {name}` shows it.")
        return
    if svc.status == ServiceStatus.FAILED:
        raise fail(f"{name} failed: {svc.status_reason}")
    _wait_for_endpoint(svc.endpoint)
    console.print(f"[green]{name} is READY[/] at {svc.endpoint}")


def _wait_for_endpoint(endpoint: str | None, timeout: float = 15.0) -> None:
    """READY in the controller, then the load balancer must have heard of it (its next
    sync), so the user's first request does not meet a 503."""
    if not endpoint:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"{endpoint}/-/healthz", timeout=2).json()
            if health.get("ready_replicas", 0) > 0:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)


@app.command()
@friendly
def update(
    name: str = typer.Argument(...),
    file: Path = typer.Argument(..., help="the new service YAML"),
    env: list[str] = typer.Option([], "--env", help=f"an env for the replicas: {ENV_HELP}"),
    secret: list[str] = typer.Option([], "--secret", help=f"a secret: {ENV_HELP}"),
) -> None:
    """Roll a service to a new version of its YAML (new replicas first, then old ones go)."""
    data, spec = _load(file, env, secret)
    client = _client(start=False)
    bundle = upload_bundle(client, spec, console)
    body = {"spec": data, "bundle": bundle}
    svc = ServicePublic.model_validate(client.json("PUT", _service_path(name), json=body))
    console.print(f"Service [bold]{name}[/] is rolling to version {svc.version}.")


@app.command()
@friendly
def status(
    name: str | None = typer.Argument(None),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    events: bool = typer.Option(False, "--events", help="also list recent events"),
) -> None:
    """Show services and their replicas."""
    try:
        client = _client(start=False)
    except ControllerUnavailable:
        if name:
            raise
        console.print("No controller is running, so no services. `serve up FILE` starts one.")
        return
    services = (
        [client.json("GET", _service_path(name))]
        if name
        else client.json("GET", "/api/v1/services")
    )
    evts: list[Any] = []
    if events:
        targets = [name] if name else [s["name"] for s in services]
        for target in targets:
            evts += client.json("GET", _service_path(target, "/events"), params={"limit": 50})
    if as_json:
        out: Any = services[0] if name else services
        if events and name:
            out = {**out, "events": evts}
        typer.echo(json.dumps(out, indent=2))
        return
    if not services:
        console.print("No services. `serve up FILE` starts one.")
        return
    print_status(console, services, evts)


@app.command()
@friendly
def down(
    name: str = typer.Argument(...),
    purge: bool = typer.Option(False, "--purge", help="forget a service whose cleanup failed"),
    detach: bool = typer.Option(False, "-d", "--detach", help="return without waiting"),
) -> None:
    """Terminate a service's replicas and load balancer, and forget it."""
    client = _client(start=False)
    result = client.json("DELETE", _service_path(name), params={"purge": purge})
    if result["status"] == "DELETED" or detach:
        console.print(f"Service {name}: {result['status']}")
        return
    with console.status(f"taking {name} down") as spinner:
        while True:
            try:
                svc = ServicePublic.model_validate(client.json("GET", _service_path(name)))
            except ApiError as exc:
                if exc.status == 404:
                    break
                raise
            if svc.status == ServiceStatus.FAILED_CLEANUP:
                raise fail(f"{name}: {svc.status_reason}")
            alive = len(svc.replicas)
            spinner.update(f"taking {name} down: {alive} replicas left")
            time.sleep(0.5)
    console.print(f"Service [bold]{name}[/] is down: replicas and load balancer stopped.")


@app.command()
@friendly
def logs(
    name: str = typer.Argument(...),
    replica: int | None = typer.Option(None, "--replica", help="replica ID"),
    lb: bool = typer.Option(False, "--lb", help="the load balancer's log"),
    controller: bool = typer.Option(False, "--controller", help="the controller's log"),
    follow: bool = typer.Option(False, "-f", "--follow", help="keep printing new lines"),
    tail: int = typer.Option(0, "--tail", help="only the last N bytes to start with"),
) -> None:
    """Print a replica's, the load balancer's or the controller's log."""
    if sum([replica is not None, lb, controller]) != 1:
        raise fail("say which log: --replica ID, --lb or --controller")
    target = "replica" if replica is not None else ("lb" if lb else "controller")
    path = _service_path(name, "/logs")
    client = _client(start=False)
    params: dict[str, Any] = {"target": target, "tail": tail}
    if replica is not None:
        params["replica"] = replica
    while True:
        resp = client.call("GET", path, params=params)
        typer.echo(resp.content.decode(errors="replace"), nl=False)
        if not follow:
            return
        params = {**params, "offset": int(resp.headers.get("X-Log-Offset", "0")), "tail": 0}
        time.sleep(1.0)


@app.command()
@friendly
def validate(
    file: Path = typer.Argument(..., help="service YAML"),
    as_json: bool = typer.Option(False, "--json", help="print the normalised spec as JSON"),
) -> None:
    """Check a service YAML without deploying it; print it with every default filled in."""
    from controller.spec import SpecError

    try:
        spec = load_spec_file(file)
    except SpecError as exc:
        if as_json:
            typer.echo(json.dumps({"valid": False, "issues": exc.as_json()}, indent=2))
            raise typer.Exit(1) from None
        raise
    warnings = [
        *ignored_fields(parse_yaml(read_spec_file(file))),
        *spec.mount_warnings(),
        *(
            f"{m} has no value: pass --{m.split('.')[0].rstrip('s')} {m.split('.', 1)[1]} "
            "to serve up"
            for m in spec.missing_values()
        ),
    ]
    if as_json:
        typer.echo(
            json.dumps({"valid": True, "spec": spec.redacted(), "warnings": warnings}, indent=2)
        )
        return
    policy = spec.service.policy
    replicas = f"{policy.min_replicas}"
    if policy.autoscaling:
        replicas += f"-{policy.max_replicas} at {policy.target_qps_per_replica} qps each"
    console.print(f"[green]valid[/]: {file}")
    console.print(
        f"  replicas: {replicas}; port {spec.port}; "
        f"probe {spec.service.readiness_probe.path}; "
        f"{'spot' if spec.any_spot else 'on-demand'}"
    )
    for warning in warnings:
        console.print(f"  [yellow]warning:[/] {warning}")
