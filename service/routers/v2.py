"""Open Inference Protocol v2 (KServe, Triton, MLServer): health, metadata and ``infer``, with
and without ``/versions/{version}``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

import service
from service.errors import ModelNotFound, NotSupportedByModel, json_response
from service.model import LoadedModel
from service.routers._common import parse_json, read_body, state_of
from service.v2 import infer_response, model_metadata, parse_infer_request

router = APIRouter(prefix="/v2", tags=["v2 (Open Inference Protocol)"])

_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": ["FP64", "FP32", "INT64", "INT32", "BOOL",
                                                 "BYTES"]},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}  # fmt: skip
OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": _TENSOR, "minItems": 1},
                        "outputs": {"type": "array", "items": {
                            "type": "object", "required": ["name"],
                            "properties": {"name": {"type": "string"}}}},
                    },
                },
                "example": {"id": "42", "inputs": [{"name": "input-0", "shape": [1, 4],
                            "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}],
                            "outputs": [{"name": "predict"}, {"name": "predict_proba"}]},
            }
        },
    }
}  # fmt: skip
_INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"example": {
        "model_name": "iris-classifier", "model_version": "3", "id": "42",
        "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [1], "data": ["setosa"]}]}}}},
    400: {"description": "the body is not JSON"},
    404: {"description": "no such model or version here"},
    413: {"description": "body or row count over the limit"},
    422: {"description": "the tensors do not fit the model's signature"},
    503: {"description": "no model loaded yet"},
}  # fmt: skip


def _served(request: Request, name: str, version: str | None) -> LoadedModel:
    state = state_of(request)
    if name != state.settings.model_name:
        raise ModelNotFound(f"model {name!r} is not served here (this server serves "
                            f"{state.settings.model_name!r})")  # fmt: skip
    model = state.store.require()
    if version is not None and version != model.info.version:
        raise ModelNotFound(
            f"version {version!r} of {name!r} is not served here (serving v{model.info.version})"
        )
    return model


@router.get("", summary="Server metadata")
async def server_metadata() -> Response:
    return json_response({"name": "mlkube", "version": service.__version__, "extensions": []})


@router.get("/health/live", summary="Server liveness")
async def server_live() -> Response:
    return json_response({"live": True})


@router.get("/health/ready", summary="Server readiness: 503 until the model is loaded")
async def server_ready(request: Request) -> Response:
    ready = state_of(request).store.current is not None
    return json_response({"ready": ready}, 200 if ready else 503)


@router.get("/models/{name}", summary="Model metadata")
async def metadata(request: Request, name: str) -> Response:
    return _metadata(request, name, None)


@router.get("/models/{name}/versions/{version}", summary="Model metadata (one version)")
async def version_metadata(request: Request, name: str, version: str) -> Response:
    return _metadata(request, name, version)


def _metadata(request: Request, name: str, version: str | None) -> Response:
    model = _served(request, name, version)
    return json_response(model_metadata(model, model.schema))


_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "ready", "content": {"application/json": {
        "example": {"name": "iris-classifier", "ready": True}}}},
    404: {"description": "this model, or this version of it, is not served here (as metadata "
          "and infer answer)"},
    503: {"description": "the model is not loaded yet"},
}  # fmt: skip


@router.get("/models/{name}/ready", summary="Model readiness", responses=_READY_RESPONSES)
async def model_ready(request: Request, name: str) -> Response:
    return _ready(request, name, None)


@router.get("/models/{name}/versions/{version}/ready", summary="Model readiness (one version)",
            responses=_READY_RESPONSES)  # fmt: skip
async def version_ready(request: Request, name: str, version: str) -> Response:
    return _ready(request, name, version)


def _ready(request: Request, name: str, version: str | None) -> Response:
    state = state_of(request)
    if name != state.settings.model_name:
        raise ModelNotFound(f"model {name!r} is not served here")
    model = state.store.current
    if model is None:
        return json_response({"name": name, "ready": False}, 503)
    if version is not None and version != model.info.version:
        raise ModelNotFound(
            f"version {version!r} of {name!r} is not served here (serving v{model.info.version})"
        )
    return json_response({"name": name, "ready": True}, 200)


@router.post("/models/{name}/infer", summary="Inference", openapi_extra=OPENAPI,
             response_class=Response, responses=_INFER_RESPONSES)  # fmt: skip
async def infer(request: Request, name: str) -> Response:
    return await _infer(request, name, None)


@router.post("/models/{name}/versions/{version}/infer", summary="Inference (one version)",
             openapi_extra=OPENAPI, response_class=Response,
             responses=_INFER_RESPONSES)  # fmt: skip
async def version_infer(request: Request, name: str, version: str) -> Response:
    return await _infer(request, name, version)


async def infer_raw(request: Request) -> Response:
    """Both infer routes, reading the path parameters from the request itself (served as plain
    Starlette routes: see ``service.app``)."""
    params = request.path_params
    return await _infer(request, params["name"], params.get("version"))


async def _infer(request: Request, name: str, version: str | None) -> Response:
    state = state_of(request)
    model = _served(request, name, version)
    settings = state.settings
    payload = parse_json(await read_body(request, settings.max_body_bytes))
    if model.schema is None:
        raise NotSupportedByModel("this model has no column signature: use /invocations")
    parsed = parse_infer_request(payload, model, model.schema, settings.max_rows)
    want_proba = "predict_proba" in parsed.outputs
    result = await state.predictor.predict(model, parsed.features, want_proba)
    state.metrics.count_predictions(result.model.info.version, result.labels)
    body = infer_response(parsed, result.model, result.labels, result.proba)
    return Response(orjson.dumps(body), media_type="application/json")
