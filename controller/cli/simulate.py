"""`serve simulate`: replay placement policies against recorded spot traces.

Runs the exact policy classes the controller runs (policies.registry) through the
trace-driven simulator in policies.simulation, and prints one row per policy.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from controller.cli.app import app
from policies.registry import POLICY_NAMES, UnknownPolicy
from policies.simulation.engine import SimSettings
from policies.simulation.experiment import (
    ExperimentError,
    ExperimentSpec,
    PolicySummary,
    run_experiment,
)
from policies.simulation.traces import SpotTrace, TraceError, load_trace, shared_dir
from policies.simulation.workloads import WORKLOADS, MafTrace, WorkloadError, load_maf

DEFAULT_POLICIES = ["spothedge", "even_spread", "round_robin", "on_demand", "optimal"]


class Preemption(StrEnum):
    newest = "newest"
    random = "random"


class Prices(StrEnum):
    relative = "relative"
    catalog = "catalog"


class CapacityMode(StrEnum):
    auto = "auto"
    counts = "count"  # not `count`: that name is str.count
    binary = "binary"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _maf(
    workloads: list[str], explicit: bool, path: Path | None
) -> tuple[list[str], MafTrace | None]:
    if "maf" not in workloads:
        return workloads, None
    source = path or shared_dir() / "workloads" / "maf1.csv"
    if not source.exists():
        if explicit:
            raise WorkloadError(f"{source}: MAF workload trace not found; pass --maf PATH")
        return [w for w in workloads if w != "maf"], None
    return workloads, load_maf(source)


def catalog_prices(trace: SpotTrace) -> dict[str, tuple[float, float]]:
    """(on-demand, spot) $/h per zone from the instance catalog, matched on cloud, zone and
    the accelerator named in the trace file (`v100_1` = 1 V100); the cheapest match wins."""
    from provisioners.catalog import CatalogError, default_catalog

    try:
        entries = default_catalog().entries
    except (OSError, CatalogError) as exc:
        raise ExperimentError(f"cannot read the instance catalog: {exc}") from exc
    prices = {}
    for zone in trace.zones:
        parts = zone.instance.split("_")
        accelerator = parts[0].upper()
        count = int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
        matches = [
            e
            for e in entries
            if e.location == zone.location
            and e.accelerator.upper() == accelerator
            and e.accelerator_count == count
            and e.spot_price is not None
        ]
        if not matches:
            raise ExperimentError(
                f"the catalog has no spot and on-demand price for {count}x {accelerator} in "
                f"{zone.location} (from {zone.path.name}); add it to the catalog or use "
                "--prices relative"
            )
        best = min(matches, key=lambda e: e.on_demand_price)
        prices[zone.location.key] = (best.on_demand_price, best.spot_price or 0.0)
    return prices


def _summary_json(s: PolicySummary, spec: ExperimentSpec) -> dict[str, Any]:
    tick = spec.settings.tick_seconds
    zones = spec.trace.zones
    return {
        "policy": s.policy,
        "cost_relative": s.mean(lambda r: r.relative_cost),
        "cost_relative_std": s.std(lambda r: r.relative_cost),
        "availability": s.mean(lambda r: r.availability),
        "availability_min": min(r.result.availability for r in s.runs),
        "preemptions": s.mean(lambda r: r.preemptions),
        "launches": s.mean(lambda r: r.launches),
        "refused_launches": s.mean(lambda r: r.refused_launches),
        "latency": {w: vars(v) for w, v in s.latency.items()},
        "runs": [
            {
                "repeat": run.window.repeat,
                "offset_hours": run.window.offset_ticks * tick / 3600,
                "zone_order": [zones[i].location.key for i in run.window.zone_order],
                "cost_relative": run.result.relative_cost,
                "availability": run.result.availability,
                "preemptions": run.result.preemptions,
                "launches": run.result.launches,
                "refused_launches": run.result.refused_launches,
                "latency": {w: vars(v) for w, v in run.latency.items()},
            }
            for run in s.runs
        ],
    }


def _document(
    spec: ExperimentSpec, trace_dir: Path, results: list[PolicySummary]
) -> dict[str, Any]:
    s = spec.settings
    return {
        "trace": {
            "name": spec.trace.name,
            "path": str(trace_dir),
            "zones": [z.location.key for z in spec.trace.zones],
            "binary": spec.trace.binary,
            "hours": spec.trace.duration_seconds / 3600,
        },
        "settings": {
            "target": s.target,
            "overprovision": s.overprovision,
            "base_on_demand": s.base_on_demand,
            "dynamic_fallback": s.dynamic_fallback,
            "cold_start_seconds": s.cold_start_seconds,
            "tick_seconds": s.tick_seconds,
            "preemption": s.preemption,
            "notice_seconds": s.notice_seconds,
            "availability_target": s.availability_target,
            "hours": spec.hours,
            "repeats": spec.repeats,
            "seed": spec.seed,
            "on_demand_cost": spec.on_demand_cost,
            "prices": spec.prices or "relative",
            "workloads": list(spec.workloads),
            "request_rate": spec.request_rate,
        },
        "policies": [_summary_json(r, spec) for r in results],
    }


def _tables(doc: dict[str, Any]) -> list[Table]:
    t = doc["trace"]
    s = doc["settings"]
    goal = s["availability_target"]
    target = "" if goal is None else f"availability target {round(100 * goal, 6):g}%, "
    main = Table(
        title=f"{t['name']}: {len(t['zones'])} zones, N_tar={s['target']}, "
        f"N_extra={s['overprovision']}, cold start {s['cold_start_seconds']:g}s, "
        f"notice {s['notice_seconds']:g}s, {target}"
        f"{s['repeats']} x {s['hours']:g}h",
    )
    for name in ("Policy", "Cost vs on-demand", "Availability", "Preemptions", "Launches"):
        main.add_column(name, justify="left" if name == "Policy" else "right")
    for p in doc["policies"]:
        main.add_row(
            p["policy"],
            f"{p['cost_relative']:.3f}",
            f"{p['availability'] * 100:.1f}%",
            f"{p['preemptions']:.1f}",
            f"{p['launches']:.1f}",
        )
    latency = Table(title=f"Request latency (s), {s['request_rate']:g} req/s, timeout counts 100 s")
    for name in ("Policy", "Workload", "P50", "P90", "P99", "Failed"):
        latency.add_column(name, justify="left" if name in ("Policy", "Workload") else "right")
    for p in doc["policies"]:
        for workload, v in p["latency"].items():
            latency.add_row(
                p["policy"],
                workload,
                f"{v['p50']:.1f}",
                f"{v['p90']:.1f}",
                f"{v['p99']:.1f}",
                f"{v['failure_rate'] * 100:.2f}%",
            )
    return [main, latency] if s["workloads"] else [main]


def _run(spec: ExperimentSpec) -> list[PolicySummary]:
    console = Console(stderr=True)
    total = len(spec.policies) * spec.repeats
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("simulating", total=total)

        def done(policy: str, repeat: int) -> None:
            progress.update(task, advance=1, description=f"{policy} #{repeat + 1}")

        return run_experiment(spec, done)


@app.command("simulate")
def simulate(
    trace: Annotated[Path, typer.Option(help="Directory of zone trace files (*.json).")],
    policy: Annotated[
        list[str] | None,
        typer.Option(help=f"Policy to replay, repeatable: {', '.join(POLICY_NAMES)}."),
    ] = None,
    target: Annotated[int, typer.Option(min=1, help="N_tar: replicas that must be ready.")] = 3,
    overprovision: Annotated[int, typer.Option(min=0, help="N_extra spot replicas.")] = 1,
    base_on_demand: Annotated[int, typer.Option(min=0, help="Base on-demand replicas.")] = 0,
    dynamic_fallback: Annotated[bool, typer.Option(help="Dynamic on-demand fallback.")] = True,
    cold_start: Annotated[float, typer.Option(min=0, help="Seconds until ready.")] = 120.0,
    notice: Annotated[
        float,
        typer.Option(min=0, help="Preemption notice in seconds: the replica serves until it ends."),
    ] = 0.0,
    availability_target: Annotated[
        float | None,
        typer.Option(help="adaptive_hedge: availability in percent (99.5) to buy with on-demand."),
    ] = None,
    tick: Annotated[float, typer.Option(min=1, help="Seconds per simulation step.")] = 30.0,
    hours: Annotated[float, typer.Option(help="Length of each replayed window.")] = 24.0,
    repeats: Annotated[int, typer.Option(min=1, help="Windows at random offsets.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed for offsets, zone order, requests.")] = 0,
    on_demand_cost: Annotated[float, typer.Option(help="On-demand price, spot = 1.")] = 3.0,
    prices: Annotated[
        Prices, typer.Option(help="relative: spot 1, on-demand --on-demand-cost; catalog: $/h.")
    ] = Prices.relative,
    workload: Annotated[
        list[str] | None,
        typer.Option(help=f"Latency workload, repeatable: {', '.join(WORKLOADS)}."),
    ] = None,
    rate: Annotated[float, typer.Option(min=0.0001, help="Mean requests per second.")] = 0.15,
    maf: Annotated[Path | None, typer.Option(help="MAF request-rate CSV.")] = None,
    preemption: Annotated[Preemption, typer.Option(help="Which replicas a drop preempts.")] = (
        Preemption.newest
    ),
    capacity: Annotated[
        CapacityMode, typer.Option(help="Read 1 as unlimited (binary), counts, or auto.")
    ] = CapacityMode.auto,
    optimal_max_launched: Annotated[
        int | None, typer.Option(help="Optimal: cap on all launched replicas (default none).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Replay placement policies on spot traces: cost, availability, preemptions, latency."""
    if availability_target is not None and not 0 < availability_target < 100:
        raise _fail(
            f"--availability-target {availability_target:g} is not a percent above 0 and below "
            "100: write e.g. 99.5"
        )
    try:
        loaded: SpotTrace = load_trace(trace, capacity.value)
        workloads, maf_trace = _maf(list(workload or WORKLOADS), workload is not None, maf)
        spec = ExperimentSpec(
            trace=loaded,
            policies=tuple(p.strip().lower().replace("-", "_") for p in policy or DEFAULT_POLICIES),
            settings=SimSettings(
                target=target,
                overprovision=overprovision,
                base_on_demand=base_on_demand,
                dynamic_fallback=dynamic_fallback,
                cold_start_seconds=cold_start,
                tick_seconds=tick,
                preemption=preemption.value,
                notice_seconds=notice,
                availability_target=(
                    None if availability_target is None else availability_target / 100
                ),
            ),
            hours=hours,
            repeats=repeats,
            seed=seed,
            on_demand_cost=on_demand_cost,
            workloads=tuple(workloads),
            request_rate=rate,
            maf=maf_trace,
            optimal_max_launched=optimal_max_launched,
            prices=catalog_prices(loaded) if prices is Prices.catalog else {},
        )
        unknown = [p for p in spec.policies if p not in POLICY_NAMES]
        if unknown:
            raise UnknownPolicy(
                f"unknown policy {unknown[0]!r}; choose from: {', '.join(POLICY_NAMES)}"
            )
        results = _run(spec)
    except (TraceError, ExperimentError, WorkloadError, UnknownPolicy) as exc:
        raise _fail(str(exc)) from None
    doc = _document(spec, trace, results)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    console = Console()
    for table in _tables(doc):
        console.print(table)
