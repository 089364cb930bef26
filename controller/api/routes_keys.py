"""/api/v1/services/{name}/keys: the API keys of a service's endpoint (token-protected,
reads included: a key's metadata says who may use the service)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam

from controller.api.deps import require_token, runtime
from controller.api.errors import Conflict, NotFound
from controller.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeyRevoked
from controller.api_keys import NoSuchKey, TooManyKeys, create_key, list_keys, revoke_key
from controller.db import ApiKeyRow
from controller.runtime import ControllerRuntime

router = APIRouter(
    prefix="/api/v1/services", tags=["api keys"], dependencies=[Depends(require_token)]
)


def _public(row: ApiKeyRow) -> ApiKeyPublic:
    return ApiKeyPublic(id=row.id, prefix=row.prefix, label=row.label, created_at=row.created_at)


@router.post("/{name}/keys", status_code=201, response_model=ApiKeyCreated)
def create(
    name: str, body: ApiKeyCreate, rt: ControllerRuntime = Depends(runtime)
) -> ApiKeyCreated:
    """A new key; its value is in this answer and nowhere else."""
    try:
        new = create_key(rt.db, rt.clock, name, body.label)
    except TooManyKeys as exc:
        raise Conflict("too_many_api_keys", str(exc)) from None
    return ApiKeyCreated(**_public(new.row).model_dump(), key=new.value)


@router.get("/{name}/keys", response_model=list[ApiKeyPublic])
def listing(name: str, rt: ControllerRuntime = Depends(runtime)) -> list[ApiKeyPublic]:
    return [_public(row) for row in list_keys(rt.db, name)]


@router.delete("/{name}/keys/{key_id}", response_model=ApiKeyRevoked)
def revoke(
    name: str,
    key_id: int = PathParam(ge=1, le=2**31 - 1),
    rt: ControllerRuntime = Depends(runtime),
) -> ApiKeyRevoked:
    """The key stops working at each load balancer's next sync. Revoking the last key opens
    the endpoint (no keys: no check): make the new key before revoking the old one."""
    try:
        key, left = revoke_key(rt.db, rt.clock, name, key_id)
    except NoSuchKey as exc:
        raise NotFound("no_such_api_key", str(exc)) from None
    return ApiKeyRevoked(**_public(key).model_dump(), keys_left=left)
