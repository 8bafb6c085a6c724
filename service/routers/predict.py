"""``POST /predict``: mlkube's own format.

Body: ``{"instances": [[5.1, 3.5, 1.4, 0.2]]}`` (values in signature order) or
``{"instances": [{"sepal_length": 5.1, ...}]}`` (by name), or just the list. Answer: the labels,
each row's class probabilities when the model has them, and the model version that answered.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.errors import InvalidInput, NotSupportedByModel
from service.model import LoadedModel, Prediction
from service.routers._common import parse_json, read_body, state_of

router = APIRouter(tags=["predict"])

_ROW = {
    "anyOf": [
        {"type": "array", "items": {"type": "number"}, "minItems": 1,
         "description": "values in the order of the model's signature"},
        {"type": "object", "additionalProperties": {"type": "number"}, "minProperties": 1,
         "description": "values by feature name"},
    ]
}  # fmt: skip
_INSTANCES = {"type": "array", "items": _ROW, "minItems": 1}
_EXAMPLE = {
    "instances": [
        [5.1, 3.5, 1.4, 0.2],
        {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3},
    ]
}
_RESPONSE_EXAMPLE = {
    "model_name": "iris-classifier",
    "model_version": "3",
    "predictions": ["setosa", "virginica"],
    "probabilities": [{"setosa": 0.98, "versicolor": 0.02, "virginica": 0.0},
                      {"setosa": 0.0, "versicolor": 0.03, "virginica": 0.97}],
}  # fmt: skip
_ERROR = {"content": {"application/json": {"example": {
    "error": "invalid_input", "message": "instances[0].sepal_width must be a number, got a "
    "string '3.5'", "field": "instances[0].sepal_width"}}}}  # fmt: skip

OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"type": "object", "required": ["instances"],
                         "properties": {"instances": _INSTANCES}, "additionalProperties": False},
                        _INSTANCES,
                    ]
                },
                "example": _EXAMPLE,
            }
        },
    }
}  # fmt: skip


@router.post(
    "/predict",
    summary="Predict rows given as lists or objects",
    openapi_extra=OPENAPI,
    response_class=Response,
    responses={
        200: {"content": {"application/json": {"example": _RESPONSE_EXAMPLE}}},
        400: {"description": "the body is not JSON"},
        413: {"description": "body or row count over the limit"},
        422: {"description": "the rows do not fit the model's signature", **_ERROR},
        503: {"description": "no model loaded yet"},
    },
)
async def predict(request: Request) -> Response:
    state = state_of(request)
    model = state.store.require()
    settings = state.settings
    payload = parse_json(await read_body(request, settings.max_body_bytes))
    if model.schema is None:
        raise NotSupportedByModel(
            "this model has no column signature to validate /predict against: use /invocations"
        )
    if isinstance(payload, dict):
        extra = [k for k in payload if k != "instances"]
        if extra:
            raise InvalidInput(f"unknown field {extra[0]!r}: send {{\"instances\": [...]}}",
                               field=extra[0])  # fmt: skip
        if "instances" not in payload:
            raise InvalidInput("missing field 'instances'", field="instances")
        instances = payload["instances"]
    else:
        instances = payload
    features = model.schema.rows(instances, where="instances", max_rows=settings.max_rows)
    result = await state.predictor.predict(model, features, model.has_proba)
    state.metrics.count_predictions(result.model.info.version, result.labels)
    return Response(orjson.dumps(answer(result)), media_type="application/json")


def answer(result: Prediction) -> dict[str, Any]:
    model: LoadedModel = result.model
    body: dict[str, Any] = {
        "model_name": model.info.name,
        "model_version": model.info.version,
        "predictions": result.labels.tolist(),
    }
    if result.proba is not None and model.class_keys is not None:
        keys = model.class_keys
        body["probabilities"] = [dict(zip(keys, row, strict=True)) for row in result.proba.tolist()]
    return body
