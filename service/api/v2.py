"""Open Inference Protocol v2 (KServe, Triton, MLServer): health, metadata and ``infer``, with
and without ``/versions/{version}``.

An infer request carries either one tensor of shape ``[N, <number of features>]`` (data flat or
nested, row-major), or one tensor per feature, named like the signature's columns, each of shape
``[N]`` (MLServer's pandas codec). Outputs follow MLServer's scikit-learn runtime: ``predict``
(the default) and ``predict_proba`` (ask for it in ``outputs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from math import prod
from typing import Annotated, Any, Literal, get_args

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

import service
from service.api.endpoints import Endpoints
from service.dataplane import plane
from service.errors import InvalidInput, NotSupportedByModel, Problem, json_response
from service.runtime.model import Array, LoadedModel
from service.runtime.schema import V2_DATATYPES, Features, FeatureSchema, check_row_count

PREFIX = "/v2"


def error_body(problem: Problem) -> dict[str, Any]:
    """The protocol's error shape: ``{"error": <message>}``."""
    return {"error": problem.message}


# Every /v2 route answers errors in the protocol's shape; so does a /v2 path no route matches
# (service.api.UNROUTED_ERRORS).
api = Endpoints(tags=["v2 (Open Inference Protocol)"], errors=error_body)

# -- what the infer routes accept (the API page's schema; the parsing is below) ----------------

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class RequestInput(BaseModel):
    name: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    datatype: Datatype
    data: list[Any] = Field(description="row-major values, flat or nested as the shape")
    parameters: dict[str, Any] | None = None


class RequestOutput(BaseModel):
    name: Literal["predict", "predict_proba"]
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(None, min_length=1)


_INFER_EXAMPLE = {
    "id": "42",
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    ],
    "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
}
_INFER_RESPONSES: dict[int, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {
                "example": {
                    "model_name": "iris-classifier",
                    "model_version": "3",
                    "id": "42",
                    "outputs": [
                        {"name": "predict", "datatype": "BYTES", "shape": [1], "data": ["setosa"]}
                    ],
                }
            }
        }
    },
    400: {"description": "the body is not JSON"},
    404: {"description": "no such model or version here"},
    413: {"description": "body or row count over the limit"},
    422: {"description": "the tensors do not fit the model's signature"},
    501: {"description": "the model has no column signature: use /invocations"},
    503: {"description": "no model loaded yet"},
}
_READY_RESPONSES: dict[int, dict[str, Any]] = {
    200: {
        "description": "ready",
        "content": {"application/json": {"example": {"name": "iris-classifier", "ready": True}}},
    },
    404: {
        "description": "this model, or this version of it, is not served here (as metadata "
        "and infer answer)"
    },
    503: {"description": "the model is not loaded yet"},
}
_METADATA_RESPONSES: dict[int, dict[str, Any]] = {
    404: {"description": "this model, or this version of it, is not served here"},
    503: {"description": "no model loaded yet"},
}


@api.get("/v2", summary="Server metadata")
async def server_metadata(_request: Request) -> Response:
    return json_response({"name": "mlkube", "version": service.__version__, "extensions": []})


@api.get("/v2/health/live", summary="Server liveness", probe=True)
async def server_live(_request: Request) -> Response:
    return json_response({"live": True})


@api.get(
    "/v2/health/ready",
    summary="Server readiness: 503 until the model is loaded",
    probe=True,
    responses={503: {"description": "the model is not loaded yet"}},
)
async def server_ready(request: Request) -> Response:
    ready = plane(request).ready()
    return json_response({"ready": ready}, 200 if ready else 503)


@api.get("/v2/models/{name}", summary="Model metadata", responses=_METADATA_RESPONSES)
@api.get(
    "/v2/models/{name}/versions/{version}",
    summary="Model metadata (one version)",
    responses=_METADATA_RESPONSES,
)
async def metadata(request: Request) -> Response:
    params = request.path_params
    model = plane(request).model_info(params["name"], params.get("version"))
    return json_response(model_metadata(model, model.schema))


@api.get("/v2/models/{name}/ready", summary="Model readiness", responses=_READY_RESPONSES)
@api.get(
    "/v2/models/{name}/versions/{version}/ready",
    summary="Model readiness (one version)",
    responses=_READY_RESPONSES,
)
async def ready(request: Request) -> Response:
    name, version = request.path_params["name"], request.path_params.get("version")
    ready = plane(request).model_ready(name, version)
    return json_response({"name": name, "ready": ready}, 200 if ready else 503)


@api.post(
    "/v2/models/{name}/infer",
    summary="Inference",
    body=InferenceRequest,
    example=_INFER_EXAMPLE,
    responses=_INFER_RESPONSES,
)
@api.post(
    "/v2/models/{name}/versions/{version}/infer",
    summary="Inference (one version)",
    body=InferenceRequest,
    example=_INFER_EXAMPLE,
    responses=_INFER_RESPONSES,
)
async def infer(request: Request) -> Response:
    dataplane = plane(request)
    model = dataplane.model_info(request.path_params["name"], request.path_params.get("version"))
    payload = await dataplane.json_body(request)
    if model.schema is None:
        raise NotSupportedByModel("this model has no column signature: use /invocations")
    parsed = parse_infer_request(payload, model, model.schema, dataplane.max_rows)
    result = await dataplane.infer(model, parsed.features, PREDICT_PROBA in parsed.outputs)
    body = infer_response(parsed, result.model, result.labels, result.proba)
    return Response(orjson.dumps(body), media_type="application/json")


# -- parsing and answers ----------------------------------------------------------------------

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
DATATYPES: frozenset[str] = frozenset(get_args(Datatype))
_NUMERIC = DATATYPES - {"BOOL", "BYTES"}
_KIND_DATATYPES = {
    "double": _NUMERIC,
    "float": _NUMERIC,
    "long": _NUMERIC,
    "integer": _NUMERIC,
    "boolean": {"BOOL"},
    "string": {"BYTES"},
}


@dataclass(frozen=True)
class ParsedRequest:
    id: str | None
    features: Features
    outputs: tuple[str, ...]


def parse_infer_request(
    payload: Any, model: LoadedModel, schema: FeatureSchema, max_rows: int
) -> ParsedRequest:
    if not isinstance(payload, dict):
        raise InvalidInput("the body must be a JSON object with an 'inputs' list")
    unknown = set(payload) - {"id", "parameters", "inputs", "outputs"}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string", field="id")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors", field="inputs")
    tensors = [_tensor(t, i) for i, t in enumerate(inputs)]
    names = [t.name for t in tensors]
    if len(tensors) == 1 and names[0] not in schema.name_set:
        features = _matrix(tensors[0], schema, max_rows)
    elif set(names) == schema.name_set and len(names) == len(schema.names):
        features = _columns(tensors, schema, max_rows)
    else:
        raise InvalidInput(
            f"'inputs' must be one tensor of shape [N, {len(schema.names)}] or one tensor per "
            f"feature ({schema.describe()}); got tensors {names}",
            field="inputs",
        )
    return ParsedRequest(request_id, features, _outputs(payload.get("outputs"), model))


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    datatype: str
    flat: list[Any]
    where: str


def _tensor(raw: Any, index: int) -> _Tensor:
    where = f"inputs[{index}]"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object", field=where)
    name, shape, datatype, data = (raw.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}.name must be a non-empty string", field=f"{where}.name")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise InvalidInput(
            f"{where}.shape must be a list of non-negative integers", field=f"{where}.shape"
        )
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"{where}.datatype must be one of {sorted(DATATYPES)}, got {datatype!r}",
            field=f"{where}.datatype",
        )
    if not isinstance(data, list):
        raise InvalidInput(f"{where}.data must be a list", field=f"{where}.data")
    flat = _flatten(data, len(shape), f"{where}.data")
    if len(flat) != prod(shape):
        raise InvalidInput(
            f"{where}.data has {len(flat)} values but shape {shape} needs {prod(shape)}",
            field=f"{where}.data",
        )
    if datatype.startswith(("INT", "UINT")) and any(type(v) is float for v in flat):
        raise InvalidInput(
            f"{where}.data holds non-integers but datatype is {datatype}", field=f"{where}.data"
        )
    return _Tensor(name, tuple(shape), datatype, flat, where)


def _flatten(data: list[Any], depth: int, where: str) -> list[Any]:
    """Row-major values of ``data``: flat already, or nested up to ``depth`` levels."""
    flat = data
    for _ in range(depth - 1):
        if not flat or not any(type(v) is list for v in flat):
            break
        if not all(type(v) is list for v in flat):
            raise InvalidInput(f"{where} mixes lists and values", field=where)
        flat = list(chain.from_iterable(flat))
    if any(type(v) is list for v in flat):
        raise InvalidInput(f"{where} is nested deeper than its shape", field=where)
    return flat


def _check_datatype(tensor: _Tensor, kinds: set[str]) -> None:
    allowed = set().union(*(_KIND_DATATYPES[k] for k in kinds))
    if tensor.datatype not in allowed:
        raise InvalidInput(
            f"{tensor.where}.datatype {tensor.datatype} does not fit the model's "
            f"{'/'.join(sorted(kinds))} input",
            field=f"{tensor.where}.datatype",
        )


def _matrix(tensor: _Tensor, schema: FeatureSchema, max_rows: int) -> Features:
    k = len(schema.names)
    if len(tensor.shape) != 2 or tensor.shape[1] != k:
        raise InvalidInput(
            f"{tensor.where}.shape must be [N, {k}] (features {schema.describe()}), "
            f"got {list(tensor.shape)}",
            field=f"{tensor.where}.shape",
        )
    _check_datatype(tensor, {c.kind for c in schema.columns})
    n = tensor.shape[0]
    check_row_count(n, max_rows, tensor.where)
    rows = [tensor.flat[i * k : (i + 1) * k] for i in range(n)]
    return schema.rows(rows, where=f"{tensor.where}.data", max_rows=max_rows)


def _columns(tensors: list[_Tensor], schema: FeatureSchema, max_rows: int) -> Features:
    kinds = {c.name: c.kind for c in schema.columns}
    columns: dict[str, list[Any]] = {}
    for tensor in tensors:
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise InvalidInput(
                f"{tensor.where}.shape must be [N] or [N, 1] for a per-feature tensor, "
                f"got {list(tensor.shape)}",
                field=f"{tensor.where}.shape",
            )
        _check_datatype(tensor, {kinds[tensor.name]})
        columns[tensor.name] = tensor.flat
    return schema.columns_input(columns, where="inputs", max_rows=max_rows)


def _outputs(raw: Any, model: LoadedModel) -> tuple[str, ...]:
    if raw is None:
        return (PREDICT,)
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("'outputs' must be a non-empty list of {\"name\": ...}", field="outputs")
    available = available_outputs(model)
    names = []
    for i, out in enumerate(raw):
        name = out.get("name") if isinstance(out, dict) else None
        if name not in available:
            raise InvalidInput(
                f"outputs[{i}].name must be one of {list(available)}, got {name!r}",
                field=f"outputs[{i}].name",
            )
        names.append(name)
    return tuple(dict.fromkeys(names))


def available_outputs(model: LoadedModel) -> tuple[str, ...]:
    return (PREDICT, PREDICT_PROBA) if model.has_proba else (PREDICT,)


def label_datatype(labels: Array) -> str:
    kind = labels.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    return "BYTES"


def infer_response(
    request: ParsedRequest, model: LoadedModel, labels: Array, proba: Array | None
) -> dict[str, Any]:
    outputs: list[dict[str, Any]] = []
    for name in request.outputs:
        if name == PREDICT:
            outputs.append(
                {
                    "name": PREDICT,
                    "datatype": label_datatype(labels),
                    "shape": [len(labels)],
                    "data": labels.tolist(),
                }
            )
        elif proba is not None:
            outputs.append(
                {
                    "name": PREDICT_PROBA,
                    "datatype": "FP64",
                    "shape": list(proba.shape),
                    "data": proba.ravel().tolist(),
                }
            )
    body: dict[str, Any] = {
        "model_name": model.info.name,
        "model_version": model.info.version,
        "outputs": outputs,
    }
    if request.id is not None:
        body["id"] = request.id
    return body


def model_metadata(model: LoadedModel, schema: FeatureSchema | None) -> dict[str, Any]:
    inputs = (
        [{"name": c.name, "datatype": V2_DATATYPES[c.kind], "shape": [-1]} for c in schema.columns]
        if schema is not None
        else []
    )
    label_type = label_datatype(np.asarray(model.classes)) if model.classes else "FP64"
    outputs = [{"name": PREDICT, "datatype": label_type, "shape": [-1]}]
    if model.has_proba:
        width = len(model.classes) if model.classes is not None else -1
        outputs.append({"name": PREDICT_PROBA, "datatype": "FP64", "shape": [-1, width]})
    return {
        "name": model.info.name,
        "versions": [model.info.version],
        "platform": "mlflow_" + ("sklearn" if "sklearn" in model.info.flavors else "pyfunc"),
        "inputs": inputs,
        "outputs": outputs,
    }
