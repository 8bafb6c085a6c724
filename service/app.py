"""The FastAPI application: the API (service.api), error handlers, metrics, the model lifecycle.

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
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

import service
from service.api import ENDPOINTS, UNROUTED_ERRORS
from service.api.endpoints import EndpointRoute, openapi
from service.dataplane import DataPlane
from service.errors import install_error_handlers
from service.loader import ModelStore, keep_loaded
from service.metrics import Metrics, MetricsMiddleware
from service.runtime.batching import MicroBatcher, Predictor
from service.runtime.model import LoadedModel
from service.settings import Settings, get_settings

log = logging.getLogger(__name__)


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
    dataplane = DataPlane(settings, store, metrics, predictor, datetime.now(UTC))

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
        log.info(
            "serving %s (batching %s)",
            settings.model_uri_description,
            "on" if settings.batching else "off",
        )
        try:
            yield
        finally:
            loader.cancel()
            with suppress(asyncio.CancelledError):
                await loader
            await predictor.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    title, description = (
        "mlkube model server",
        (
            "Serves the MLflow registered model the alias points to (or the pinned version). "
            "Three dialects: `/predict` (mlkube), `/invocations` (as `mlflow models serve`), "
            "`/v2/...` (Open Inference Protocol). Probes: `/healthz/live`, `/healthz/ready`."
        ),
    )
    app = FastAPI(
        title=title,
        version=service.__version__,
        description=description,
        lifespan=lifespan,
        # FastAPI's own pages load Swagger UI and ReDoc from a CDN: blank on an air-gapped
        # cluster. /docs is served below from the swagger-ui-bundle package instead.
        docs_url=None,
        redoc_url=None,
    )
    app.state.dataplane = dataplane
    # Every API route is a plain Starlette route declared once in service.api, and documented
    # from that same declaration (see service.api.endpoints for why not FastAPI routes).
    app.router.routes[:0] = [EndpointRoute(e) for e in ENDPOINTS]

    def document() -> dict[str, Any]:
        # Built on the first request for it, as FastAPI does (~20 ms): not on the start path.
        if app.openapi_schema is None:
            app.openapi_schema = openapi(
                ENDPOINTS, title=title, version=service.__version__, description=description
            )
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
    _serve_docs(app)
    install_error_handlers(app, UNROUTED_ERRORS)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
