"""Health, controller identity and Prometheus metrics."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from controller.api.deps import read_access, runtime
from controller.api.metrics import ControllerCollector
from controller.runtime import ControllerRuntime

router = APIRouter(tags=["controller"])


@router.get("/healthz")
def healthz(rt: ControllerRuntime = Depends(runtime)) -> JSONResponse:
    """Liveness, the database's reachability, the role, and the schedule's counters (how
    many ticks were attempted, led, run per service, and hit a database error)."""
    body: dict[str, Any] = {
        "status": "ok",
        "database": "ok",
        "role": "leader" if rt.is_leader else "standby",
        "ticks": asdict(rt.counters),
    }
    try:
        with rt.db.session() as s:
            s.execute(text("SELECT 1"))
    except OperationalError:
        return JSONResponse({**body, "status": "degraded", "database": "unreachable"}, 503)
    return JSONResponse(body)


@router.get("/api/v1/controller", dependencies=[Depends(read_access)])
def controller_info(rt: ControllerRuntime = Depends(runtime)) -> dict[str, Any]:
    import os

    return {
        "url": rt.settings.url,
        "pid": os.getpid(),
        "database": rt.db.display_url,
        "role": "leader" if rt.is_leader else "standby",
        "clouds": list(rt.settings.clouds),
        "home": str(rt.settings.home),
        "max_bundle_bytes": rt.settings.max_bundle_bytes,
        "timings": rt.timings.summary(),
        "installation": rt.installation_id,
    }


@router.get("/api/v1/controller/timings", dependencies=[Depends(read_access)])
def timings(
    since: float = Query(0.0, ge=0), rt: ControllerRuntime = Depends(runtime)
) -> dict[str, Any]:
    """p50/p99 of a service's tick, the time between two ticks of a service, and probes,
    over the samples taken since `since` (epoch seconds)."""
    return dict(rt.timings.summary(since))


@router.get("/metrics", dependencies=[Depends(read_access)])
def metrics(rt: ControllerRuntime = Depends(runtime)) -> Response:
    registry = CollectorRegistry()
    registry.register(ControllerCollector(rt.db, rt.clock.now))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
