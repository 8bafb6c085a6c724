"""What is being served (``GET /model``) and Prometheus metrics (``GET /metrics``)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from service.api.endpoints import Endpoints
from service.dataplane import plane
from service.errors import json_response

api = Endpoints(tags=["info"])

_MODEL_EXAMPLE = {
    "name": "iris-classifier",
    "version": "3",
    "alias": "production",
    "run_id": "5c4a...",
    "source": "models:/m-1234",
    "loaded_at": "2026-11-22T10:00:00+00:00",
    "load_seconds": 0.8,
    "flavors": ["python_function", "sklearn"],
    "fast_path": "treelite",
    "serving": {
        "path": "treelite",
        "reason": "treelite: same labels as scikit-learn, probabilities within 1e-12 on 3,950 "
        "check rows (30 holdout, ...)",
    },
    "classes": ["setosa", "versicolor", "virginica"],
    "inputs": [{"name": "sepal_length", "type": "double", "required": True}],
    "signature": {"inputs": "...", "outputs": "..."},
}


@api.get(
    "/model",
    summary="The model version being served, its signature and classes",
    responses={
        200: {"content": {"application/json": {"example": _MODEL_EXAMPLE}}},
        503: {"description": "no model loaded yet"},
    },
)
async def model_info(request: Request) -> Response:
    model = plane(request).model_info()
    i = model.info
    body: dict[str, Any] = {
        "name": i.name,
        "version": i.version,
        "alias": i.alias,
        "run_id": i.run_id,
        "source": i.source,
        "loaded_at": i.loaded_at.isoformat(),
        "load_seconds": i.load_seconds,
        "flavors": list(i.flavors),
        "fast_path": model.fast_kind,
        "serving": {"path": model.serving_path, "reason": model.serving_reason},
        "classes": model.classes,
        "inputs": model.schema.to_json() if model.schema is not None else None,
        "signature": i.signature,
    }
    return json_response(body)


@api.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(plane(request).metrics_text(), media_type=CONTENT_TYPE_LATEST)
