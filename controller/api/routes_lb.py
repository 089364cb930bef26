"""The load balancer's sync call: it reports request counts, it gets the ready replicas."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select

from controller.api.deps import require_token, runtime
from controller.api.schemas import LbSyncRequest, LbSyncResponse
from controller.db import ReplicaRow
from controller.runtime import ControllerRuntime
from controller.services import get_or_404, latest_spec
from replica_manager.records import ReplicaStatus

router = APIRouter(prefix="/api/v1/services", tags=["load balancer"])


@router.post(
    "/{name}/lb-sync", response_model=LbSyncResponse, dependencies=[Depends(require_token)]
)
def lb_sync(
    name: str, body: LbSyncRequest, rt: ControllerRuntime = Depends(runtime)
) -> LbSyncResponse:
    with rt.db.session() as s:
        row = get_or_404(s, name)
        ready = list(
            s.scalars(
                select(ReplicaRow.url).where(
                    ReplicaRow.service_id == row.id,
                    ReplicaRow.status == ReplicaStatus.READY.value,
                    ReplicaRow.url.is_not(None),
                )
            ).all()
        )
        service = latest_spec(row).service
    rt.rates.record(name, body.request_count, body.window_seconds, rt.clock.now())
    return LbSyncResponse(
        ready_replicas=ready,
        load_balancing_policy=service.load_balancing_policy,
        resume_streams=service.resume_streams,
    )
