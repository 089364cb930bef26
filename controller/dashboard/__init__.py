"""The dashboard at `/`: one HTML page, its stylesheet and scripts, shipped in the package
(`static/`, package data) and served as they are: no build step, nothing from a CDN.

The page holds no data of its own; its scripts read the REST API with the same bearer token
rules as any client (with `SERVE_READ_AUTH` they ask for the token), so serving the files
themselves needs no token. The Content-Security-Policy allows only this origin's scripts
and styles: user data that slipped into markup could still not run.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from controller.api.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "chart.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The only files served: a name not listed is a 404, so no path reaches past `static/`."""
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/dashboard/{asset}")
def asset(asset: str) -> FileResponse:
    media_type = ASSETS.get(asset)
    if media_type is None:
        raise NotFound("no_such_file", f"the dashboard has no file {asset[:100]!r}")
    return FileResponse(STATIC / asset, media_type=media_type, headers=HEADERS)
