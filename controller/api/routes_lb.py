"""The load balancer's sync call: it reports request counts, it gets the ready replicas
(and the hashes of the service's API keys)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select

from controller.api.deps import require_token, runtime
from controller.api.schemas import LbSyncRequest, LbSyncResponse
from controller.api_keys import active_hashes
from controller.db import ReplicaRow
from controller.runtime import ControllerRuntime
from controller.services import get_or_404, latest_version
from controller.updates import serving
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
        found = s.execute(
            select(ReplicaRow.url, ReplicaRow.version).where(
                ReplicaRow.service_id == row.id,
                ReplicaRow.status == ReplicaStatus.READY.value,
                ReplicaRow.url.is_not(None),
            )
        ).all()
        latest = latest_version(row)
        service = latest.spec.service
        pairs = [(str(url), int(version)) for url, version in found]
        ready = serving(pairs, row.version, latest.update_mode, row.target_replicas)
        key_hashes = active_hashes(s, row.id)
    rt.rates.record(name, body.request_count, body.window_seconds, rt.clock.now())
    return LbSyncResponse(
        ready_replicas=ready,
        load_balancing_policy=service.load_balancing_policy,
        resume_streams=service.resume_streams,
        api_key_hashes=key_hashes,
    )
