"""`create_app(settings)`: the controller's FastAPI application.

The runtime (schema upgrade, reconcile schedule) starts in the lifespan, never at import or
construction, so tests can build the app, and uvicorn owns the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from controller.api.body_limit import BodyLimit
from controller.api.errors import install_error_handlers
from controller.api.routes_bundles import BUNDLES_PREFIX
from controller.api.routes_bundles import router as bundles_router
from controller.api.routes_history import router as history_router
from controller.api.routes_keys import router as keys_router
from controller.api.routes_lb import router as lb_router
from controller.api.routes_market import router as market_router
from controller.api.routes_meta import router as meta_router
from controller.api.routes_services import router as services_router
from controller.api.routes_updates import router as updates_router
from controller.dashboard import router as dashboard_router
from controller.history import HistorySampler, ServiceHistory
from controller.runtime import ControllerRuntime
from controller.settings import Settings


def create_app(settings: Settings, runtime: ControllerRuntime | None = None) -> FastAPI:
    rt = runtime or ControllerRuntime(settings)
    history = ServiceHistory()
    sampler = HistorySampler(rt.db, rt.clock, history, settings.tick_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt.start()
        sampler.start()
        try:
            yield
        finally:
            sampler.stop()
            rt.stop()

    app = FastAPI(
        title="spotserve controller",
        version="0.1.0",
        description="Services, replicas and events of a SpotHedge serving controller.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.history = history
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, exempt=(BUNDLES_PREFIX,))
    install_error_handlers(app)
    app.include_router(meta_router)
    app.include_router(services_router)
    app.include_router(updates_router)
    app.include_router(bundles_router)
    app.include_router(lb_router)
    app.include_router(keys_router)
    app.include_router(market_router)
    app.include_router(history_router)
    app.include_router(dashboard_router)
    return app
