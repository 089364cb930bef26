"""Request dependencies: the runtime, and bearer-token checks."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.auth import token_matches
from controller.runtime import ControllerRuntime

bearer = HTTPBearer(auto_error=False)


def runtime(request: Request) -> ControllerRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def require_token(
    creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    rt: ControllerRuntime = Depends(runtime),
) -> None:
    if creds is None or not token_matches(creds.credentials, rt.token):
        raise HTTPException(
            401,
            detail="missing or wrong bearer token; the CLI reads it from $SERVE_HOME/token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def read_access(
    creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    rt: ControllerRuntime = Depends(runtime),
) -> None:
    if rt.settings.read_auth:
        require_token(creds, rt)
