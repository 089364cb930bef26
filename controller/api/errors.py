"""Every failure becomes a JSON body `{error, detail, issues}` with a 4xx/5xx status;
no traceback ever reaches a client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from controller.replica_down import NoSuchReplica
from controller.services import ServiceExists, ServiceNotFound
from controller.spec import SpecError

log = logging.getLogger(__name__)


class NotFound(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


class Conflict(Exception):
    """The request cannot apply to the resource as it is now (409)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _body(status: int, error: str, detail: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SpecError)
    async def spec_error(_: Request, exc: SpecError) -> JSONResponse:
        return _body(422, "invalid_spec", exc.summary(), issues=exc.as_json())

    @app.exception_handler(ServiceNotFound)
    async def not_found(_: Request, exc: ServiceNotFound) -> JSONResponse:
        return _body(404, "no_such_service", f"no service named {exc}; `serve status` lists them")

    @app.exception_handler(NotFound)
    async def missing(_: Request, exc: NotFound) -> JSONResponse:
        return _body(404, exc.code, exc.detail)

    @app.exception_handler(NoSuchReplica)
    async def no_replica(_: Request, exc: NoSuchReplica) -> JSONResponse:
        return _body(404, "no_such_replica", str(exc))

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _body(409, exc.code, exc.detail)

    @app.exception_handler(ServiceExists)
    async def exists(_: Request, exc: ServiceExists) -> JSONResponse:
        return _body(
            409,
            "service_exists",
            f"a service named {exc} already exists; `serve update {exc} FILE` changes it, "
            "or pick another name with -n",
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {"path": ".".join(str(p) for p in e["loc"]), "message": str(e["msg"]), "hint": ""}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{i['path']}: {i['message']}" for i in issues) or "bad request"
        return _body(422, "invalid_request", detail, issues=issues)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        codes = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
        }
        resp = _body(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))
        for key, value in (exc.headers or {}).items():
            resp.headers[key] = value
        return resp

    @app.exception_handler(OperationalError)
    async def db_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc.orig)
        return _body(
            503, "database_unavailable", "the controller cannot reach its database; retry shortly"
        )

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _body(500, "internal_error", "the controller hit a bug; see its log")
