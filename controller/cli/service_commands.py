"""`serve up | update | status | logs | validate`: service commands over the REST API
(`serve down` is in `down_command`)."""

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
from controller.cli.connect import controller_client, service_path
from controller.cli.errors import fail, friendly, wide_console
from controller.cli.job_values import apply_values, parse_values
from controller.cli.render import print_status
from controller.cli.resource_flags import (
    Cloud,
    Cpus,
    Envs,
    Gpus,
    Infra,
    Memory,
    Region,
    Secrets,
    UseSpot,
    Zone,
)
from controller.client import ControllerClient, ControllerUnavailable
from controller.service_status import ServiceStatus
from controller.spec import ServiceSpec, ignored_fields, parse_yaml, read_spec_file
from controller.spec.overrides import ResourceFlags, validate_with_flags
from controller.spec.tls_files import absolute_tls_paths, check_tls_files
from controller.updates import UPDATE_MODES

console = wide_console()


def _load(
    file: Path,
    envs: list[str] | None = None,
    secrets: list[str] | None = None,
    flags: ResourceFlags | None = None,
) -> tuple[dict[str, Any], ServiceSpec]:
    """Parse and validate locally, lay the resource flags over it, apply `--env`/`--secret`,
    and make `workdir` and `service.tls` paths absolute (relative to the current directory,
    as SkyPilot does); the TLS files must load."""
    data = absolute_tls_paths(parse_yaml(read_spec_file(file), str(file)), Path.cwd())
    data, spec = validate_with_flags(data, flags or ResourceFlags(), str(file))
    check_tls_files(spec.service.tls, str(file))
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


@app.command()
@friendly
def up(
    file: Path = typer.Argument(..., help="service YAML"),
    name: str | None = typer.Option(None, "-n", "--name", help="service name"),
    detach: bool = typer.Option(False, "-d", "--detach", help="return without waiting"),
    infra: Infra = None,
    cloud: Cloud = None,
    region: Region = None,
    zone: Zone = None,
    gpus: Gpus = None,
    cpus: Cpus = None,
    memory: Memory = None,
    use_spot: UseSpot = None,
    env: Envs = None,
    secret: Secrets = None,
) -> None:
    """Start a service from a YAML and wait until it answers."""
    flags = ResourceFlags(infra, cloud, region, zone, gpus, cpus, memory, use_spot)
    data, spec = _load(file, env, secret, flags)
    name = name or spec.name
    if not name:
        raise fail("the service needs a name: pass -n NAME or add `name:` to the YAML")
    for warning in [*ignored_fields(data), *spec.mount_warnings()]:
        console.print(f"[yellow]warning:[/] {warning}")
    client = controller_client(start=True)
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
                svc = ServicePublic.model_validate(client.json("GET", service_path(name)))
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
    sync), so the user's first request does not meet a 503. Its certificate is not checked
    here (it may name a host other than the one in the endpoint): only readiness is read."""
    if not endpoint:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"{endpoint}/-/healthz", timeout=2, verify=False).json()
            if health.get("ready_replicas", 0) > 0:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)


@app.command()
@friendly
def update(
    name: str = typer.Argument(...),
    file: Path | None = typer.Argument(None, help="the new service YAML"),
    mode: str = typer.Option(
        "rolling",
        "--mode",
        help="rolling: new replicas first, old ones go as new ones get ready; blue_green: "
        "the old version takes every request until the new one is wholly ready",
    ),
    max_surge: int | None = typer.Option(
        None,
        "--max-surge",
        min=0,
        help="rolling: replicas allowed above the steady count (default: a quarter of the "
        "target, at least 1)",
    ),
    rollback: bool = typer.Option(
        False, "--rollback", help="back to the last version before this one that was READY"
    ),
    to_version: int | None = typer.Option(
        None, "--to-version", min=1, help="back to version K (its YAML and code)"
    ),
    infra: Infra = None,
    cloud: Cloud = None,
    region: Region = None,
    zone: Zone = None,
    gpus: Gpus = None,
    cpus: Cpus = None,
    memory: Memory = None,
    use_spot: UseSpot = None,
    env: Envs = None,
    secret: Secrets = None,
) -> None:
    """Roll a service to a new version of its YAML, or back to an earlier version.

    A YAML that changes only `service:` fields (counts, autoscaling, probe, balancing)
    keeps the running replicas."""
    if mode not in UPDATE_MODES:
        raise fail(f"--mode {mode!r}: use one of {', '.join(UPDATE_MODES)}")
    client = controller_client(start=False)
    if rollback or to_version is not None:
        if file is not None:
            raise fail("give either a FILE or --rollback/--to-version, not both")
        body: dict[str, Any] = {"to_version": to_version, "mode": mode}
        raw = client.json("POST", service_path(name, "/rollback"), json=body)
    else:
        if file is None:
            raise fail(f"say what to update to: `serve update {name} FILE`, or --rollback")
        flags = ResourceFlags(infra, cloud, region, zone, gpus, cpus, memory, use_spot)
        data, spec = _load(file, env, secret, flags)
        bundle = upload_bundle(client, spec, console)
        body = {"spec": data, "bundle": bundle, "mode": mode, "max_surge": max_surge}
        raw = client.json("PUT", service_path(name), json=body)
    svc = ServicePublic.model_validate(raw)
    kept = [r.id for r in svc.replicas if r.version == svc.version]
    if kept:
        ids = ", ".join(map(str, kept))
        console.print(
            f"Service [bold]{name}[/] is at version {svc.version} in place: replicas {ids} "
            "keep running."
        )
    else:
        how = "blue-green" if mode == "blue_green" else "rolling"
        console.print(f"Service [bold]{name}[/] is rolling ({how}) to version {svc.version}.")


@app.command()
@friendly
def status(
    name: str | None = typer.Argument(None),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    events: bool = typer.Option(False, "--events", help="also list recent events"),
    endpoint: bool = typer.Option(
        False, "--endpoint", help="print only the endpoint of service NAME (for scripts)"
    ),
) -> None:
    """Show services and their replicas."""
    if endpoint:
        _print_endpoint(name)
        return
    try:
        client = controller_client(start=False)
    except ControllerUnavailable:
        if name:
            raise
        console.print("No controller is running, so no services. `serve up FILE` starts one.")
        return
    services = (
        [client.json("GET", service_path(name))] if name else client.json("GET", "/api/v1/services")
    )
    evts: list[Any] = []
    if events:
        targets = [name] if name else [s["name"] for s in services]
        for target in targets:
            evts += client.json("GET", service_path(target, "/events"), params={"limit": 50})
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


NO_ENDPOINT = {
    ServiceStatus.CONTROLLER_INIT: " yet: the controller has not started its load balancer",
    ServiceStatus.SHUTTING_DOWN: ": it is going down",
    ServiceStatus.FAILED_CLEANUP: ": it is going down",
}


def _print_endpoint(name: str | None) -> None:
    """Only the URL on stdout, so `curl $(serve status --endpoint NAME)/v1/...` works; a
    service whose load balancer is not (or no longer) there fails instead."""
    if not name:
        raise fail("--endpoint needs a service: serve status --endpoint NAME")
    client = controller_client(start=False)
    svc = ServicePublic.model_validate(client.json("GET", service_path(name)))
    why = " yet" if svc.endpoint is None else NO_ENDPOINT.get(svc.status)
    if why is not None:
        raise fail(f"{name} has no endpoint{why} ({svc.status}); `serve status {name}` shows it")
    typer.echo(svc.endpoint)


@app.command()
@friendly
def logs(
    name: str = typer.Argument(...),
    replica: int | None = typer.Option(None, "--replica", help="replica ID"),
    lb: bool = typer.Option(False, "--lb", help="the load balancer's log"),
    controller: bool = typer.Option(False, "--controller", help="the controller's log"),
    follow: bool = typer.Option(
        True,
        "--follow/--no-follow",
        "-f",
        help="keep printing new lines (the default, as `sky serve logs`); --no-follow prints "
        "what is there and exits",
    ),
    tail: int = typer.Option(0, "--tail", help="only the last N bytes to start with"),
) -> None:
    """Print a replica's, the load balancer's or the controller's log, and follow it."""
    if sum([replica is not None, lb, controller]) != 1:
        raise fail("say which log: --replica ID, --lb or --controller")
    target = "replica" if replica is not None else ("lb" if lb else "controller")
    path = service_path(name, "/logs")
    client = controller_client(start=False)
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
    infra: Infra = None,
    cloud: Cloud = None,
    region: Region = None,
    zone: Zone = None,
    gpus: Gpus = None,
    cpus: Cpus = None,
    memory: Memory = None,
    use_spot: UseSpot = None,
    env: Envs = None,
    secret: Secrets = None,
) -> None:
    """Check a service YAML without deploying it; print it with every default filled in.

    Resource flags are laid over it as `serve up` would, so their result can be seen."""
    from controller.spec import SpecError

    flags = ResourceFlags(infra, cloud, region, zone, gpus, cpus, memory, use_spot)
    try:
        data = absolute_tls_paths(parse_yaml(read_spec_file(file), str(file)), Path.cwd())
        data, spec = validate_with_flags(data, flags, str(file))
        check_tls_files(spec.service.tls, str(file))
    except SpecError as exc:
        if as_json:
            typer.echo(json.dumps({"valid": False, "issues": exc.as_json()}, indent=2))
            raise typer.Exit(1) from None
        raise
    spec = spec.with_values(
        parse_values(env or [], "--env"), parse_values(secret or [], "--secret")
    )
    warnings = [
        *ignored_fields(data),
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
