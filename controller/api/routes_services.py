"""/api/v1/services: the desired state, and what the reconcile loop made of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam
from sqlalchemy import func, select

from controller.api.deps import read_access, require_token, runtime
from controller.api.errors import Conflict
from controller.api.routes_bundles import BUNDLES_PREFIX
from controller.api.schemas import (
    EventPublic,
    ReplicaDown,
    ReplicaPublic,
    ServiceCreate,
    ServiceCreated,
    ServicePublic,
    ServiceUpdate,
)
from controller.api.views import event_view, replica_view, service_view_in
from controller.bundle import BundleError, pack
from controller.db import EventRow, ServiceRow
from controller.replica_down import end_replica, purge, shutting_down
from controller.runtime import ControllerRuntime
from controller.service_status import ServiceStatus
from controller.services import (
    create_service,
    get_or_404,
    request_down,
)
from controller.spec import (
    ServiceSpec,
    SpecError,
    SpecIssue,
    check_service_name,
    ignored_fields,
    parse_yaml,
)
from controller.spec.loader import validate_spec
from controller.spec.models import SpecProblem
from controller.spec.tls_files import check_tls_files

router = APIRouter(prefix="/api/v1/services", tags=["services"])


def spec_from(body: ServiceCreate | ServiceUpdate) -> tuple[ServiceSpec, list[str]]:
    if body.spec is None and body.yaml is None:
        raise SpecError([SpecIssue("", "send either 'spec' (a mapping) or 'yaml' (text)")])
    data = body.spec if body.spec is not None else parse_yaml(body.yaml or "")
    spec = validate_spec(data)
    check_tls_files(spec.service.tls)
    missing = spec.missing_values()
    if missing:
        raise SpecError(
            [
                SpecIssue(
                    m,
                    "has no value",
                    f"pass --{m.split('.')[0].rstrip('s')} "
                    f"{m.split('.', 1)[1]} to serve up, or give the value in the request",
                )
                for m in missing
            ]
        )
    return spec, [*ignored_fields(data), *spec.mount_warnings()]


def bundle_for(rt: ControllerRuntime, spec: ServiceSpec, digest: str | None) -> str | None:
    """The bundle a new version runs with: the one uploaded under `digest`, else one the
    controller packs from its own disk (an API client on the controller's machine)."""
    if digest is not None:
        if rt.bundles.get(digest) is None:
            raise SpecError(
                [
                    SpecIssue(
                        "bundle",
                        f"bundle {digest} was not uploaded",
                        f"PUT it to {BUNDLES_PREFIX}/{digest} first",
                    )
                ]
            )
        return digest
    if not spec.workdir and not spec.local_mounts():
        return None
    workdir = Path(spec.workdir).expanduser() if spec.workdir else None
    mounts = {t: Path(src).expanduser() for t, src in spec.local_mounts().items()}
    relative = [
        str(p) for p in [workdir, *mounts.values()] if p is not None and not p.is_absolute()
    ]
    if relative:
        raise SpecError(
            [
                SpecIssue(
                    "workdir",
                    f"{relative[0]} is relative and no bundle was sent",
                    "use `serve up`, which packs and uploads it, or send absolute paths",
                )
            ]
        )
    try:
        packed = pack(workdir, mounts, rt.settings.bundle_dir, rt.settings.max_bundle_bytes)
    except BundleError as exc:
        raise SpecError([SpecIssue("workdir", str(exc), "")]) from None
    return packed.digest if packed else None


def _name(body: ServiceCreate, spec: ServiceSpec) -> str:
    name = body.name or spec.name
    if not name:
        raise SpecError(
            [SpecIssue("name", "the service needs a name", "pass -n NAME or set name:")]
        )
    try:
        check_service_name(name)
    except SpecProblem as exc:
        raise SpecError([SpecIssue("name", exc.message, exc.hint)]) from None
    return name


def _check_placeable(rt: ControllerRuntime, spec: ServiceSpec) -> None:
    """Refuse at `serve up` what no enabled cloud can host, saying what would work."""
    assert rt.reconciler is not None
    hint = rt.reconciler.offers.why_none(spec.resource_requests())
    if hint is not None:
        raise SpecError([SpecIssue("resources", "no enabled cloud offers these resources", hint)])


@router.get("", response_model=list[ServicePublic], dependencies=[Depends(read_access)])
def list_services(rt: ControllerRuntime = Depends(runtime)) -> Response:
    """Every service with its replicas (see `ServiceListing`: only changes are rebuilt)."""
    return Response(rt.listing.json(rt.clock.now()), media_type="application/json")


@router.post(
    "", status_code=201, response_model=ServiceCreated, dependencies=[Depends(require_token)]
)
def create(body: ServiceCreate, rt: ControllerRuntime = Depends(runtime)) -> ServiceCreated:
    spec, warnings = spec_from(body)
    name = _name(body, spec)
    _check_placeable(rt, spec)
    bundle = bundle_for(rt, spec, body.bundle)
    create_service(rt.db, rt.settings, rt.clock, name, spec, bundle)
    with rt.db.session() as s:
        view = service_view_in(s, get_or_404(s, name), rt.settings, rt.clock.now())
    return ServiceCreated(**view.model_dump(), warnings=warnings)


@router.get("/{name}", response_model=ServicePublic, dependencies=[Depends(read_access)])
def get(name: str, rt: ControllerRuntime = Depends(runtime)) -> ServicePublic:
    with rt.db.session() as s:
        return service_view_in(s, get_or_404(s, name), rt.settings, rt.clock.now())


@router.delete("/{name}", status_code=202, dependencies=[Depends(require_token)])
def delete(
    name: str, purge: bool = False, rt: ControllerRuntime = Depends(runtime)
) -> dict[str, Any]:
    gone = request_down(rt.db, rt.clock, name, purge)
    return {"name": name, "status": "DELETED" if gone else "SHUTTING_DOWN"}


@router.get(
    "/{name}/replicas", response_model=list[ReplicaPublic], dependencies=[Depends(read_access)]
)
def replicas(name: str, rt: ControllerRuntime = Depends(runtime)) -> list[ReplicaPublic]:
    with rt.db.session() as s:
        return [replica_view(r) for r in get_or_404(s, name).replicas]


@router.delete(
    "/{name}/replicas/{replica_id}",
    status_code=202,
    response_model=ReplicaDown,
    dependencies=[Depends(require_token)],
)
def delete_replica(
    name: str,
    replica_id: int = PathParam(ge=1, le=2**31 - 1),
    purge_row: bool = Query(False, alias="purge"),
    rt: ControllerRuntime = Depends(runtime),
) -> ReplicaDown:
    """End one replica as the controller ends any (see `controller.replica_down`)."""
    assert rt.reconciler is not None
    with rt.db.session() as s:
        status = get_or_404(s, name).status
    if status in (ServiceStatus.SHUTTING_DOWN, ServiceStatus.FAILED_CLEANUP):
        raise Conflict(
            "service_going_down",
            f"{name} is going down with all its replicas"
            + (f"; `serve down {name} --purge` forgets it" if status == "FAILED_CLEANUP" else ""),
        )
    store = rt.reconciler.store
    record = end_replica(store, name, replica_id, purge=purge_row)
    if not purge_row:
        return ReplicaDown(**vars(shutting_down(record)))
    ended = purge(store, rt.reconciler.provisioners, rt.still_leading, record)
    return ReplicaDown(**vars(ended))


@router.get("/{name}/events", response_model=list[EventPublic], dependencies=[Depends(read_access)])
def events(
    name: str,
    limit: int = Query(200, ge=1, le=5000),
    since: float = Query(0.0, ge=0),
    rt: ControllerRuntime = Depends(runtime),
) -> list[EventPublic]:
    with rt.db.session() as s:
        rows = s.scalars(
            select(EventRow)
            .where(
                EventRow.service_name == name,
                func.coalesce(EventRow.last_at, EventRow.at) >= since,
            )
            .order_by(EventRow.id.desc())
            .limit(limit)
        ).all()
        if (
            not rows
            and s.scalars(select(ServiceRow).where(ServiceRow.name == name)).first() is None
        ):
            get_or_404(s, name)
        return [event_view(r) for r in reversed(rows)]


@router.get("/{name}/logs", dependencies=[Depends(read_access)])
def logs(
    name: str,
    target: str = Query("replica", pattern="^(replica|lb|controller)$"),
    replica: int | None = Query(None, ge=1),
    offset: int = Query(0, ge=0),
    tail: int = Query(0, ge=0, le=1_000_000),
    rt: ControllerRuntime = Depends(runtime),
) -> Response:
    path = _log_path(rt, name, target, replica)
    data, end = _read_log(path, offset, tail)
    return Response(
        data, media_type="text/plain; charset=utf-8", headers={"X-Log-Offset": str(end)}
    )


def _log_path(rt: ControllerRuntime, name: str, target: str, replica: int | None) -> Path:
    from controller.api.errors import NotFound

    try:
        check_service_name(name)
    except SpecProblem:
        raise NotFound("no_such_service", f"no service named {name!r}") from None
    if target == "controller":
        path = rt.settings.log_dir / "controller.log"
    elif target == "lb":
        path = rt.settings.service_log_dir(name) / "lb.log"
    else:
        if replica is None:
            raise NotFound("replica_required", "say which replica: ?replica=ID")
        path = rt.settings.service_log_dir(name) / f"replica-{int(replica)}.log"
    # Only the log directory itself is resolved: a symlink placed in a service's directory
    # (or standing for it) must not lead to another service's logs or out of SERVE_HOME.
    allowed = rt.settings.log_dir.resolve() / path.parent.relative_to(rt.settings.log_dir)
    resolved = path.resolve()
    if not resolved.is_relative_to(allowed) or not resolved.is_file():
        raise NotFound(
            "no_log", f"no {target} log for {name}" + (f" replica {replica}" if replica else "")
        )
    return resolved


def _read_log(path: Path, offset: int, tail: int) -> tuple[bytes, int]:
    size = path.stat().st_size
    start = max(0, size - tail) if tail and not offset else min(offset, size)
    with path.open("rb") as fh:
        fh.seek(start)
        data = fh.read(min(size - start, 8 * 1024 * 1024))
    return data, start + len(data)
