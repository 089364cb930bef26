"""The load balancer's sync call: it reports request counts (and the tokens its answers
used, per replica), it gets the ready replicas (and the hashes of the service's API keys)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.api.deps import require_token, runtime
from controller.api.schemas import LbSyncRequest, LbSyncResponse
from controller.api_keys import active_hashes
from controller.capacity import CapacityTable
from controller.db import ReplicaRow, ServiceRow
from controller.db.request_counts import add_count, already_recorded
from controller.db.token_counts import ON_DEMAND, SPOT, UNKNOWN, Tokens, record_tokens
from controller.runtime import ControllerRuntime
from controller.services import get_or_404, latest_version
from controller.spec import ServiceSpec
from controller.spec.models import ServiceSection
from controller.updates import serving
from replica_manager.records import ReplicaStatus

router = APIRouter(prefix="/api/v1/services", tags=["load balancer"])


@router.post(
    "/{name}/lb-sync",
    response_model=LbSyncResponse,
    response_model_exclude_none=True,
    dependencies=[Depends(require_token)],
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
        if not ready:
            ready = _draining(s, row.id, rt.clock.now())
        weights = replica_weights(s, row.id, latest.spec, ready)
        key_hashes = active_hashes(s, row.id)
    record_report(rt, name, body)
    return LbSyncResponse(
        ready_replicas=ready,
        load_balancing_policy=service.load_balancing_policy,
        resume_streams=service.resume_streams,
        replica_weights=weights,
        session_header=_session_header(service),
        api_key_hashes=key_hashes,
    )


def record_report(rt: ControllerRuntime, name: str, body: LbSyncRequest) -> None:
    """The report's request count and tokens, together and once: a report sent again after
    its answer was lost (same `lb_id` and `seq`) is not counted again, also when two
    controllers receive it at once (the unique index refuses the second)."""
    now = rt.clock.now()
    with contextlib.suppress(IntegrityError), rt.db.session() as s:
        if already_recorded(s, name, body.lb_id, body.seq):
            return
        add_count(
            s,
            name,
            body.request_count,
            body.window_seconds,
            now,
            body.in_flight,
            body.lb_id,
            body.seq,
        )
        s.flush()  # the unique index speaks before the tokens are added
        if body.tokens:
            service_id = s.scalar(select(ServiceRow.id).where(ServiceRow.name == name))
            if service_id is not None:
                record_tokens(s, service_id, tokens_by_market(s, service_id, body.tokens), now)


def tokens_by_market(
    s: Session, service_id: int, by_url: Mapping[str, tuple[int, int]]
) -> dict[str, Tokens]:
    """A replica's tokens go to its market; a URL that several replicas had over time goes
    to the latest of them (a local port is reused), one the controller never had to
    `unknown`."""
    rows = s.execute(
        select(ReplicaRow.url, ReplicaRow.spot)
        .where(ReplicaRow.service_id == service_id, ReplicaRow.url.in_(list(by_url)))
        .order_by(ReplicaRow.replica_id)
    ).all()
    market_of = {str(url): SPOT if spot else ON_DEMAND for url, spot in rows}
    sums: dict[str, Tokens] = {}
    for url, (prompt, completion) in by_url.items():
        market = market_of.get(url, UNKNOWN)
        before = sums.get(market, (0, 0))
        sums[market] = (before[0] + prompt, before[1] + completion)
    return sums


def _session_header(service: ServiceSection) -> str | None:
    """Sent only where it is read (``session_affinity``); absent, load balancers keep theirs."""
    if service.load_balancing_policy != "session_affinity":
        return None
    return service.session_header.lower()


DRAIN_MARGIN_SECONDS = 3.0
"""A draining replica whose instance goes sooner than this is not worth a new request."""


def _draining(s: Session, service_id: int, now: float) -> list[str]:
    """With no READY replica left (every spot zone noticed at once), the draining ones
    serve until shortly before their instances go: better than no replica at all while the
    replacements start."""
    rows = s.execute(
        select(ReplicaRow.url).where(
            ReplicaRow.service_id == service_id,
            ReplicaRow.status == ReplicaStatus.DRAINING.value,
            ReplicaRow.url.is_not(None),
            ReplicaRow.drain_deadline > now + DRAIN_MARGIN_SECONDS,
        )
    ).all()
    return [str(url) for (url,) in rows]


def replica_weights(
    s: Session, service_id: int, spec: ServiceSpec, ready: Sequence[str | None]
) -> dict[str, float] | None:
    """Each ready replica's capacity, which `instance_aware_least_load` divides its requests
    in flight by (controller/capacity.py); None when the target is one number or unset, and
    the load balancers weigh every replica alike."""
    table = CapacityTable.of(spec)
    if table is None:
        return None
    rows = s.execute(
        select(ReplicaRow.url, ReplicaRow.cloud, ReplicaRow.instance_type).where(
            ReplicaRow.service_id == service_id,
            ReplicaRow.status == ReplicaStatus.READY.value,
            ReplicaRow.url.in_(ready),
        )
    ).all()
    return table.weights((url, cloud, itype) for url, cloud, itype in rows if url)
