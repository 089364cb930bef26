"""GET /api/v1/services/{name}/history: ready replicas and cost over the last hours.

Read-only, from the controller's memory (`controller.history`): it starts empty when the
controller starts, and a standby controller keeps its own from the same database.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from controller.api.deps import read_access, runtime
from controller.history import ServiceHistory
from controller.runtime import ControllerRuntime
from controller.services import get_or_404

router = APIRouter(prefix="/api/v1/services", tags=["services"])


class HistoryPoint(BaseModel):
    at: float
    ready_spot: int
    ready_on_demand: int
    target: int
    cost_per_hour: float
    on_demand_cost_per_hour: float


class HistoryPublic(BaseModel):
    """Each point's values hold from its `at` until the next point's, the last one's until
    `sampled_at`: a point is stored only when something changed."""

    service: str
    window_seconds: float
    sampled_every_seconds: float
    sampled_at: float | None
    points: list[HistoryPoint]


def service_history(request: Request) -> ServiceHistory:
    return request.app.state.history  # type: ignore[no-any-return]


@router.get("/{name}/history", response_model=HistoryPublic, dependencies=[Depends(read_access)])
def history(
    name: str,
    since: float = Query(0.0, ge=0, description="only points from the one holding then"),
    rt: ControllerRuntime = Depends(runtime),
    kept: ServiceHistory = Depends(service_history),
) -> HistoryPublic:
    found = kept.get(name)
    if found is None:
        with rt.db.session() as s:
            get_or_404(s, name)
    points = found.since(since) if found else ()
    return HistoryPublic(
        service=name,
        window_seconds=kept.window,
        sampled_every_seconds=rt.settings.tick_seconds,
        sampled_at=found.sampled_at if found else None,
        points=[HistoryPoint(**asdict(p)) for p in points],
    )
