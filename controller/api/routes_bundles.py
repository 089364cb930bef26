"""/api/v1/bundles/{sha256}: packed workdirs and file mounts, uploaded by `serve up`.

Not under the API's 1 MiB body limit: an upload streams to disk under the bundle limit
(`SERVE_MAX_BUNDLE_BYTES`) and is kept only if it hashes to its name.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from controller.api.deps import read_access, require_token, runtime
from controller.bundle_store import BundleRejected
from controller.runtime import ControllerRuntime

BUNDLES_PREFIX = "/api/v1/bundles"
router = APIRouter(prefix=BUNDLES_PREFIX, tags=["bundles"])


@router.head("/{digest}", dependencies=[Depends(read_access)])
def has_bundle(digest: str, rt: ControllerRuntime = Depends(runtime)) -> Response:
    try:
        found = rt.bundles.get(digest)
    except BundleRejected as exc:
        return Response(status_code=exc.status)
    return Response(status_code=200 if found else 404)


@router.put("/{digest}", status_code=201, dependencies=[Depends(require_token)])
async def upload_bundle(
    digest: str, request: Request, rt: ControllerRuntime = Depends(runtime)
) -> Any:
    try:
        existing = rt.bundles.get(digest)
        if existing is not None:
            return JSONResponse({"digest": digest, "size": existing.size}, status_code=200)
        bundle = await rt.bundles.receive(digest, request.stream())
    except BundleRejected as exc:
        return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status)
    return {"digest": bundle.digest, "size": bundle.size}
