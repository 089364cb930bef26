"""/api/v1/market: the local provisioner's simulated spot market, shown and set by hand
or handed to a driver (trace replay, random model)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from controller.api.deps import read_access, require_token, runtime
from controller.api.errors import NotFound
from controller.runtime import ControllerRuntime
from controller.spec import SpecError, SpecIssue
from policies.simulation.traces import TraceError
from provisioners.local import LocalProvisioner
from provisioners.local_market_driver import cached_trace

router = APIRouter(prefix="/api/v1/market", tags=["market"])
ZONE = PathParam(..., pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")


class ZoneChange(BaseModel):
    """Fields left out stay as they are; `spot_capacity: null` means unlimited."""

    spot_capacity: int | None = Field(default=..., ge=0)
    spot_price: float | None = Field(None, ge=0)
    on_demand_price: float | None = Field(None, ge=0)
    boot_seconds: float | None = Field(None, ge=0, le=1e9)
    api_delay_seconds: float | None = Field(None, ge=0, le=3600)
    notice_seconds: float | None = Field(None, ge=0, le=3600)
    model_config = {"extra": "forbid"}


class DriverChange(BaseModel):
    mode: Literal["manual", "trace", "random"]
    path: str | None = Field(None, max_length=4096)
    speedup: float = Field(60.0, gt=0, le=1e6)
    offset_seconds: float = Field(0.0, ge=0)
    seed: int = 0
    capacity: int = Field(4, ge=0, le=10_000)
    mean_available_seconds: float = Field(300.0, gt=0)
    mean_unavailable_seconds: float = Field(60.0, gt=0)
    notice_seconds: float = Field(0.0, ge=0, le=3600)
    model_config = {"extra": "forbid"}


def _local(rt: ControllerRuntime) -> LocalProvisioner:
    prov = rt.reconciler.provisioners.get("local") if rt.reconciler else None
    if not isinstance(prov, LocalProvisioner):
        raise NotFound(
            "no_local_market",
            "the simulated market belongs to the local provisioner; enable it with "
            "SERVE_CLOUDS=local (plus any other clouds)",
        )
    return prov


def _view(local: LocalProvisioner) -> dict[str, Any]:
    state = local.market.read()
    in_use = local.spot_in_use()
    zones = [
        {
            "zone": z.zone,
            "spot_capacity": z.spot_capacity,
            "spot_in_use": in_use.get(z.zone, 0),
            "spot_price": z.spot_price,
            "on_demand_price": z.on_demand_price,
            "boot_seconds": z.boot_seconds,
            "api_delay_seconds": z.api_delay_seconds,
            "notice_seconds": z.notice_seconds,
        }
        for z in state.zones
    ]
    return {"zones": zones, "driver": state.driver}


@router.get("", dependencies=[Depends(read_access)])
def show(rt: ControllerRuntime = Depends(runtime)) -> dict[str, Any]:
    return _view(_local(rt))


@router.put("/zones/{zone}", dependencies=[Depends(require_token)])
def set_zone(
    body: ZoneChange, zone: str = ZONE, rt: ControllerRuntime = Depends(runtime)
) -> dict[str, Any]:
    local = _local(rt)
    changes: dict[str, Any] = {"spot_capacity": body.spot_capacity}
    if body.spot_price is not None:
        changes["spot_price"] = body.spot_price
    if body.on_demand_price is not None:
        changes["on_demand_price"] = body.on_demand_price
    if body.boot_seconds is not None:
        changes["boot_seconds"] = body.boot_seconds
    if body.api_delay_seconds is not None:
        changes["api_delay_seconds"] = body.api_delay_seconds
    if body.notice_seconds is not None:
        changes["notice_seconds"] = body.notice_seconds
    state = local.market.set_zone(zone, **changes)
    if state.driver.get("mode") != "manual":
        local.market.write(replace(state, driver={"mode": "manual"}))
    local.enforce_market()
    return _view(local)


@router.put("/driver", dependencies=[Depends(require_token)])
def set_driver(body: DriverChange, rt: ControllerRuntime = Depends(runtime)) -> dict[str, Any]:
    local = _local(rt)
    driver = body.model_dump()
    driver["started_at"] = rt.clock.now()
    state = local.market.read()
    if body.mode == "trace":
        state = state.with_zone_count(_trace_zones(body.path))
        driver["path"] = str(Path(body.path or "").resolve())
    local.market.write(replace(state, driver=driver))
    local.drive_market(rt.clock.now())
    return _view(local)


def _trace_zones(path: str | None) -> int:
    """Zones in the trace at `path`; any path the OS refuses (NUL byte, name too long, no
    permission) is the caller's mistake, so it is a 422 naming the path, never a 500."""
    if not path:
        raise SpecError([SpecIssue("path", "a trace replay needs the trace directory")])
    try:
        return len(cached_trace(str(Path(path).resolve())).zones)
    except TraceError as exc:
        raise SpecError([SpecIssue("path", str(exc))]) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(
            [SpecIssue("path", f"cannot read {path[:200]!r}: {reason}", "give a trace directory")]
        ) from None
