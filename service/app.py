"""The FastAPI application: routers, error handlers, metrics, and the model's lifecycle.

``create_app`` builds everything but loads nothing; ``lifespan`` starts the loader (which retries
until the registry answers) and the micro-batcher, and stops both at shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match, Route
from starlette.types import Scope

import service
from service.batching import MicroBatcher, Predictor
from service.errors import install_error_handlers
from service.metrics import Metrics, MetricsMiddleware
from service.model import LoadedModel
from service.registry import ModelStore, keep_loaded
from service.routers import health, info, invocations, predict, v2
from service.routers._common import ServiceState
from service.settings import Settings, get_settings

log = logging.getLogger(__name__)


class _HotRoute(Route):
    """A plain Starlette route that, like FastAPI's, records itself in the scope (the metrics
    middleware labels requests with the matched route's template)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


DOCS_ASSETS = "/docs/assets"


def _serve_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the assets the swagger-ui-bundle package ships (no network).
    There is no ReDoc page: no maintained Python package ships its assets."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()
    store = ModelStore()
    # One predict thread when batching (one batch at a time is the point); a few otherwise.
    executor = ThreadPoolExecutor(
        max_workers=1 if settings.batching else 4, thread_name_prefix="predict"
    )
    predictor: Predictor
    if settings.batching:
        predictor = MicroBatcher(
            executor,
            max_rows=settings.batch_max_rows,
            max_wait_seconds=settings.batch_max_wait_ms / 1000,
            observe=metrics.observe_batch,
        )
    else:
        predictor = Predictor(executor, observe=metrics.observe_batch)
    state = ServiceState(settings, store, metrics, predictor, datetime.now(UTC))

    def on_loaded(model: LoadedModel, previous: LoadedModel | None) -> None:
        metrics.model_loaded(model, previous)
        if previous is None:
            # Before the first request: the long-lived objects (modules, the model) leave the
            # collector's generations, so its passes under traffic are short. Not on later
            # swaps: a full collection would pause requests in flight.
            gc.collect()
            gc.freeze()
        gc.enable()  # `python -m service` starts with it off (see service.__main__)

    def on_failed(message: str) -> None:
        metrics.model_load_failed(message)
        gc.enable()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await predictor.start()
        loader = asyncio.create_task(
            keep_loaded(store, settings, on_loaded, on_failed), name="model-loader"
        )
        log.info("serving %s (batching %s)", settings.model_uri_description,
                 "on" if settings.batching else "off")  # fmt: skip
        try:
            yield
        finally:
            loader.cancel()
            with suppress(asyncio.CancelledError):
                await loader
            await predictor.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="mlkube model server",
        version=service.__version__,
        description=(
            "Serves the MLflow registered model the alias points to (or the pinned version). "
            "Three dialects: `/predict` (mlkube), `/invocations` (as `mlflow models serve`), "
            "`/v2/...` (Open Inference Protocol). Probes: `/healthz/live`, `/healthz/ready`."
        ),
        lifespan=lifespan,
        # FastAPI's own pages load Swagger UI and ReDoc from a CDN: blank on an air-gapped
        # cluster. /docs is served below from the swagger-ui-bundle package instead.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = state
    _serve_docs(app)
    install_error_handlers(app)
    # Hot routes first: a request is matched against the routes in this order.
    for router in (invocations.router, predict.router, v2.router, health.router, info.router):
        app.include_router(router)
    # FastAPI's per-request machinery (dependency resolution, scope bookkeeping) costs ~90 us of
    # CPU per request here, a third of a whole request. The prediction routes read the raw
    # request anyway, so they are served by plain Starlette routes ahead of the FastAPI ones:
    # same handlers, same error handlers and metrics; the FastAPI routes still document them
    # in OpenAPI.
    hot = [
        _HotRoute("/invocations", invocations.invocations, methods=["POST"]),
        _HotRoute("/predict", predict.predict, methods=["POST"]),
        _HotRoute("/v2/models/{name}/infer", v2.infer_raw, methods=["POST"]),
        _HotRoute("/v2/models/{name}/versions/{version}/infer", v2.infer_raw, methods=["POST"]),
    ]
    app.router.routes[:0] = hot
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
