"""`serve update`: a new version (`PUT /api/v1/services/{name}`) or a rollback to an
earlier one (`POST /api/v1/services/{name}/rollback`); controller/updates.py says how
each rolls out."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from controller.api.deps import require_token, runtime
from controller.api.errors import NotFound
from controller.api.routes_services import bundle_for, spec_from
from controller.api.schemas import ServiceCreated, ServiceRollback, ServiceUpdate
from controller.api.views import service_view_in
from controller.runtime import ControllerRuntime
from controller.services import get_or_404
from controller.updates import NoVersionToRollBackTo, rollback_service, update_service

router = APIRouter(prefix="/api/v1/services", tags=["services"])


@router.put("/{name}", response_model=ServiceCreated, dependencies=[Depends(require_token)])
def update(
    name: str, body: ServiceUpdate, rt: ControllerRuntime = Depends(runtime)
) -> ServiceCreated:
    spec, warnings = spec_from(body)
    bundle = bundle_for(rt, spec, body.bundle)
    update_service(rt.db, rt.clock, name, spec, bundle, body.mode, body.max_surge)
    with rt.db.session() as s:
        view = service_view_in(s, get_or_404(s, name), rt.settings, rt.clock.now())
    return ServiceCreated(**view.model_dump(), warnings=warnings)


@router.post(
    "/{name}/rollback", response_model=ServiceCreated, dependencies=[Depends(require_token)]
)
def rollback(
    name: str, body: ServiceRollback, rt: ControllerRuntime = Depends(runtime)
) -> ServiceCreated:
    try:
        rollback_service(rt.db, rt.clock, name, body.to_version, body.mode)
    except NoVersionToRollBackTo as exc:
        raise NotFound("no_version_to_roll_back_to", str(exc)) from None
    with rt.db.session() as s:
        view = service_view_in(s, get_or_404(s, name), rt.settings, rt.clock.now())
    return ServiceCreated(**view.model_dump())
