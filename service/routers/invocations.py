"""MLflow's scoring protocol: ``POST /invocations`` (plus ``/ping``, ``/health``, ``/version``),
answering exactly as ``mlflow models serve`` does, so a client switches by changing the URL."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.mlflow_compat import check_request_rows, fast_features, mlflow_invocations
from service.routers._common import ServiceState, content_type, read_body, state_of
from service.routers.health import readiness

router = APIRouter(tags=["mlflow"])
JSON = "application/json"

_NUMBERS = {"type": "array", "items": {"type": "number"}}
_RECORDS = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "object", "additionalProperties": {"type": "number"}},
}
_COLUMNS = {"type": "object", "additionalProperties": _NUMBERS}
_JSON_SCHEMA = {
    "description": "exactly one of the four MLflow input formats",
    "oneOf": [
        {"type": "object", "required": ["dataframe_split"], "additionalProperties": False,
         "properties": {"dataframe_split": {
             "type": "object", "required": ["data"],
             "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": _NUMBERS}}}}},
        {"type": "object", "required": ["dataframe_records"], "additionalProperties": False,
         "properties": {"dataframe_records": _RECORDS}},
        {"type": "object", "required": ["instances"], "additionalProperties": False,
         "properties": {"instances": {"anyOf": [_RECORDS, _COLUMNS]}}},
        {"type": "object", "required": ["inputs"], "additionalProperties": False,
         "properties": {"inputs": {"anyOf": [_RECORDS, _COLUMNS]}}},
    ],
}  # fmt: skip
OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _JSON_SCHEMA,
                "example": {"dataframe_split": {
                    "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                    "data": [[5.1, 3.5, 1.4, 0.2]]}},
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n",
            },
        },
    }
}  # fmt: skip


@router.post(
    "/invocations",
    summary="MLflow scoring protocol (as `mlflow models serve`)",
    openapi_extra=OPENAPI,
    response_class=Response,
    responses={
        200: {"content": {"application/json": {"example": {"predictions": ["setosa"]}}}},
        400: {"description": 'MLflow\'s error: {"error_code": ..., "message": ...}'},
        413: {"description": "body or row count over the limit"},
        415: {"description": "unsupported content type"},
        503: {"description": "no model loaded yet"},
    },
)
async def invocations(request: Request) -> Response:
    state = state_of(request)
    model = state.store.require()
    settings = state.settings
    body = await read_body(request, settings.max_body_bytes)
    media = content_type(request)
    X = fast_features(body, media, model.schema, settings.max_rows)
    if X is not None:
        result = await state.predictor.predict(model, X, False)
        state.metrics.count_predictions(result.model.info.version, result.labels)
        return Response(result.model.predictions_json(result.labels), media_type=JSON)
    check_request_rows(body, media, settings.max_rows)
    status, content, media_type = await asyncio.to_thread(mlflow_invocations, body, media, model)
    if status == 200:
        _count(state, model.info.version, content)
    return Response(content, status_code=status, media_type=media_type)


def _count(state: ServiceState, version: str, content: str | bytes) -> None:
    try:
        predictions = orjson.loads(content).get("predictions")
    except (orjson.JSONDecodeError, AttributeError):
        return
    if isinstance(predictions, list) and predictions and not isinstance(predictions[0], dict):
        state.metrics.count_predictions(version, np.asarray(predictions, dtype=object))


@router.get("/ping", summary="MLflow's health check: 200 once the model is loaded")
async def ping(request: Request) -> Response:
    return readiness(request)


@router.get("/health", summary="Same as /ping")
async def health(request: Request) -> Response:
    return readiness(request)


@router.get("/version", summary="The MLflow version this server is compatible with")
async def mlflow_version() -> Response:
    return Response(version("mlflow-skinny"), media_type="application/json")
