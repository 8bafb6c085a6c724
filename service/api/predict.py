"""``POST /predict``: mlkube's own format.

Body: ``{"instances": [[5.1, 3.5, 1.4, 0.2]]}`` (values in signature order) or
``{"instances": [{"sepal_length": 5.1, ...}]}`` (by name), or just the list. Answer: the labels,
each row's class probabilities when the model has them, and the model version that answered.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from service.api.endpoints import Endpoints
from service.dataplane import plane
from service.errors import InvalidInput, NotSupportedByModel, mlkube_error
from service.runtime.model import Prediction

# mlkube's own error shape: {"error": <code>, "message": ..., "field": ...}
api = Endpoints(tags=["predict"], errors=mlkube_error)

Value = float | int | str | bool
Row = (
    Annotated[list[Value], Field(min_length=1, description="values in the model's signature order")]
    | Annotated[dict[str, Value], Field(min_length=1, description="values by feature name")]
)
Instances = Annotated[list[Row], Field(min_length=1)]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: Instances


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
    "probabilities": [
        {"setosa": 0.98, "versicolor": 0.02, "virginica": 0.0},
        {"setosa": 0.0, "versicolor": 0.03, "virginica": 0.97},
    ],
}
_ERROR = {
    "content": {
        "application/json": {
            "example": {
                "error": "invalid_input",
                "message": "instances[0].sepal_width must be a number, got a string '3.5'",
                "field": "instances[0].sepal_width",
            }
        }
    }
}


@api.post(
    "/predict",
    summary="Predict rows given as lists or objects",
    body=PredictRequest | Instances,
    example=_EXAMPLE,
    responses={
        200: {"content": {"application/json": {"example": _RESPONSE_EXAMPLE}}},
        400: {"description": "the body is not JSON"},
        413: {"description": "body or row count over the limit"},
        422: {"description": "the rows do not fit the model's signature", **_ERROR},
        501: {"description": "the model has no column signature: use /invocations"},
        503: {"description": "no model loaded yet"},
    },
)
async def predict(request: Request) -> Response:
    dataplane = plane(request)
    model = dataplane.model_info()
    payload = await dataplane.json_body(request)
    if model.schema is None:
        raise NotSupportedByModel(
            "this model has no column signature to validate /predict against: use /invocations"
        )
    if isinstance(payload, dict):
        extra = [k for k in payload if k != "instances"]
        if extra:
            raise InvalidInput(
                f'unknown field {extra[0]!r}: send {{"instances": [...]}}', field=extra[0]
            )
        if "instances" not in payload:
            raise InvalidInput("missing field 'instances'", field="instances")
        instances = payload["instances"]
    else:
        instances = payload
    features = model.schema.rows(instances, where="instances", max_rows=dataplane.max_rows)
    result = await dataplane.infer(model, features, model.has_proba)
    return Response(orjson.dumps(answer(result)), media_type="application/json")


def answer(result: Prediction) -> dict[str, Any]:
    model = result.model
    body: dict[str, Any] = {
        "model_name": model.info.name,
        "model_version": model.info.version,
        "predictions": result.labels.tolist(),
    }
    if result.proba is not None and model.class_keys is not None:
        keys = model.class_keys
        body["probabilities"] = [dict(zip(keys, row, strict=True)) for row in result.proba.tolist()]
    return body
