"""MLflow's scoring protocol: ``POST /invocations`` (plus ``/ping``, ``/health``, ``/version``),
answering exactly as ``mlflow models serve`` does, so a client switches by changing the URL.

Requests the fast path understands completely (JSON ``dataframe_split``, ``dataframe_records``,
``instances``/``inputs`` as records or columns, every value a finite number, exactly the model's
columns) are predicted through the data plane and serialized the way MLflow does
(``json.dumps({"predictions": ...})``). Everything else (CSV, parquet, ``params``, ``index``,
extra or missing columns, strings, NaN, malformed JSON...) the data plane ``invoke``s: MLflow's
own scoring function on the loaded pyfunc model (``service.runtime.scoring``), so status codes,
error codes and messages are MLflow's, byte for byte.
The only differences: where MLflow would answer 500 because of the request (a missing
Content-Type, an exception its parser does not catch) this server answers 415 or 400, and the
body and row limits answer 413 for every request shape.
"""

from __future__ import annotations

import io
from importlib.metadata import version
from importlib.util import find_spec
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from service.api.endpoints import Endpoints
from service.api.health import readiness
from service.dataplane import content_type, plane
from service.errors import InvalidInput, Problem, UnsupportedMediaType
from service.runtime.schema import FeatureSchema, check_row_count
from service.runtime.scoring import CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


# Parquet is read by pandas through pyarrow, which the serve image does not ship (130 MB):
# there the route answers 415 saying so, and the API page does not list it.
PARQUET = find_spec("pyarrow") is not None

# MLflow's error code for each of mlkube's, as `mlflow models serve` names them.
ERROR_CODES = {
    "malformed_body": "BAD_REQUEST",
    "invalid_input": "BAD_REQUEST",
    "payload_too_large": "REQUEST_LIMIT_EXCEEDED",
    "unsupported_media_type": "BAD_REQUEST",
    "model_not_found": "RESOURCE_DOES_NOT_EXIST",
    "model_not_loaded": "TEMPORARILY_UNAVAILABLE",
    "not_supported_by_model": "NOT_IMPLEMENTED",
    "internal_error": "INTERNAL_ERROR",
    "not_found": "ENDPOINT_NOT_FOUND",
    "method_not_allowed": "BAD_REQUEST",
    "http_error": "BAD_REQUEST",
}


def error_body(problem: Problem) -> dict[str, Any]:
    """MLflow's error shape, as ``mlflow models serve`` answers: ``{"error_code": <MLflow's
    code>, "message": ...}``."""
    code = ERROR_CODES.get(problem.code)
    if code is None:
        code = "INTERNAL_ERROR" if problem.status_code >= 500 else "BAD_REQUEST"
    return {"error_code": code, "message": problem.message}


# /invocations answers errors in MLflow's shape; /ping, /health and /version (whose only errors
# are 405s) in mlkube's.
api = Endpoints(tags=["mlflow"])

# -- what the route accepts (the API page's schema; the parsing is below and in MLflow) --------

Scalar = float | int | str | bool | None
Records = Annotated[list[dict[str, Scalar]], Field(min_length=1, description="one object per row")]
Columns = Annotated[dict[str, list[Scalar]], Field(description="one list per column")]
Tensor = Annotated[list[Any], Field(description="a tensor, for models with a tensor signature")]
Params = Annotated[
    dict[str, Any] | None,
    Field(description="inference parameters, checked against the model's params schema"),
]


class DataframeSplit(BaseModel):
    columns: list[str] | None = None
    data: list[list[Scalar]] | list[Scalar]
    index: list[int | str] | None = Field(None, description="row labels (pandas' split orient)")


class _Format(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: Params = None


class SplitRequest(_Format):
    dataframe_split: DataframeSplit


class RecordsRequest(_Format):
    dataframe_records: Records


class InstancesRequest(_Format):
    instances: Records | Columns | Tensor


class InputsRequest(_Format):
    inputs: Records | Columns | Tensor


InvocationsRequest = Annotated[
    SplitRequest | RecordsRequest | InstancesRequest | InputsRequest,
    Field(description="exactly one of MLflow's four input formats, with optional params"),
]
_OTHER_BODIES = {
    "text/csv": {
        "schema": {"type": "string", "description": "a header line, then one line per row"},
        "example": "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n",
    },
    **(
        {CONTENT_TYPE_PARQUET: {"schema": {"type": "string", "format": "binary"}}}
        if PARQUET
        else {}
    ),
}


@api.post(
    "/invocations",
    summary="MLflow scoring protocol (as `mlflow models serve`)",
    body=InvocationsRequest,
    example={
        "dataframe_split": {
            "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
            "data": [[5.1, 3.5, 1.4, 0.2]],
        }
    },
    other_bodies=_OTHER_BODIES,
    errors=error_body,
    responses={
        200: {"content": {CONTENT_TYPE_JSON: {"example": {"predictions": ["setosa"]}}}},
        400: {"description": 'MLflow\'s error: {"error_code": ..., "message": ...}'},
        413: {"description": "body or row count over the limit"},
        415: {"description": "unsupported content type"},
        503: {"description": "no model loaded yet"},
    },
)
async def invocations(request: Request) -> Response:
    dataplane = plane(request)
    model = dataplane.model_info()
    body = await dataplane.body(request)
    media = content_type(request)
    X = fast_features(body, media, model.schema, dataplane.max_rows)
    if X is not None:
        result = await dataplane.infer(model, X, False)
        return Response(result.model.predictions_json(result.labels), media_type=CONTENT_TYPE_JSON)
    if not PARQUET and _mime(media) == CONTENT_TYPE_PARQUET:
        raise UnsupportedMediaType(
            "parquet needs pyarrow, which this server's image does not ship: send JSON or CSV"
        )
    check_request_rows(body, media, dataplane.max_rows)
    answer = await dataplane.invoke(model, body, media)
    return Response(answer.content, status_code=answer.status, media_type=answer.media_type)


@api.get("/ping", summary="MLflow's health check: 200 once the model is loaded", probe=True)
async def ping(request: Request) -> Response:
    return readiness(request)


@api.get("/health", summary="Same as /ping", probe=True)
async def health(request: Request) -> Response:
    return readiness(request)


@api.get("/version", summary="The MLflow version this server is compatible with")
async def mlflow_version(_request: Request) -> Response:
    return Response(version("mlflow-skinny"), media_type=CONTENT_TYPE_JSON)


# -- parsing ------------------------------------------------------------------------------------


def is_plain_json(content_type: str | None) -> bool:
    """``application/json``, optionally with ``charset=utf-8`` (MLflow's only accepted param)."""
    if content_type is None:
        return False
    mime, _, params = content_type.partition(";")
    if mime.strip() != CONTENT_TYPE_JSON:
        return False
    params = params.strip()
    if not params:
        return True
    key, _, value = params.partition("=")
    return key.strip() == "charset" and value.strip().lower() == "utf-8"


def fast_features(
    body: bytes, content_type: str | None, schema: FeatureSchema | None, max_rows: int
) -> np.ndarray[Any, Any] | None:
    """The float64 matrix for a request MLflow would accept and answer identically; None when
    MLflow's own parser must decide. Raises PayloadTooLarge above ``max_rows``."""
    if schema is None or not schema.all_double or not is_plain_json(content_type):
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(payload) is not dict or len(payload) != 1:
        return None
    ((key, value),) = payload.items()
    try:
        if key == "dataframe_split":
            return _split(value, schema, max_rows)
        if key == "dataframe_records":
            return _records(value, schema, max_rows)
        if key in ("instances", "inputs"):
            if type(value) is dict:
                return _as_fast(schema.columns_input(value, where=key, max_rows=max_rows))
            return _records(value, schema, max_rows)
    except InvalidInput:
        return None
    return None


def check_request_rows(body: bytes, content_type: str | None, max_rows: int) -> None:
    """SERVE_MAX_ROWS for the requests MLflow's own parser handles: JSON in any of its formats
    (with ``index``, ``params`` or columns the fast path does not take), CSV and parquet. Raises
    PayloadTooLarge naming the field; leaves anything it cannot count to MLflow's answer."""
    mime = _mime(content_type)
    if mime == CONTENT_TYPE_PARQUET and PARQUET:
        rows = _parquet_rows(body)
        if rows is not None and rows > max_rows:
            check_row_count(rows, max_rows, where="parquet")
        return
    if mime == CONTENT_TYPE_CSV:
        # One line per row after the header (a quoted newline only makes this count high).
        lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
        if lines - 1 > max_rows:
            check_row_count(lines - 1, max_rows, where="csv")
        return
    if mime != CONTENT_TYPE_JSON:
        return
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if type(payload) is not dict:
        return
    for key in FORMATS:
        value = payload.get(key)
        if key == "dataframe_split" and type(value) is dict:
            value = value.get("data")
        if type(value) is dict:  # columns: {name: [values...]}
            lengths = [len(v) for v in value.values() if type(v) is list]
            value = [None] * max(lengths, default=0)
        if type(value) is list and len(value) > max_rows:
            check_row_count(len(value), max_rows, where=key)


def _mime(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip()


def _parquet_rows(body: bytes) -> int | None:
    """The row count from the file's footer (nothing is decoded); None when it is not parquet."""
    import pyarrow.lib
    import pyarrow.parquet

    try:
        return int(pyarrow.parquet.ParquetFile(io.BytesIO(body)).metadata.num_rows)
    except (pyarrow.lib.ArrowException, OSError):
        return None


def _records(value: Any, schema: FeatureSchema, max_rows: int) -> np.ndarray[Any, Any] | None:
    # Only records (objects) are unambiguous: MLflow rejects bare lists for a column schema.
    if type(value) is not list or not value or not all(type(r) is dict for r in value):
        return None
    return _as_fast(schema.rows(value, where="records", max_rows=max_rows))


def _split(value: Any, schema: FeatureSchema, max_rows: int) -> np.ndarray[Any, Any] | None:
    if type(value) is not dict or value.keys() != {"columns", "data"}:
        return None
    columns, data = value["columns"], value["data"]
    if columns == schema.names_list and type(data) is list and data:  # the common case
        return _as_fast(schema.rows(data, where="data", max_rows=max_rows))
    if (
        type(columns) is not list
        or not all(type(c) is str for c in columns)
        or len(columns) != len(schema.names)
        or set(columns) != schema.name_set
        or type(data) is not list
        or not data
        or not all(type(r) is list for r in data)
    ):
        return None
    X = _as_fast(schema.rows(data, where="data", max_rows=max_rows))
    if X is None or list(columns) == list(schema.names):
        return X
    return np.ascontiguousarray(X[:, [columns.index(n) for n in schema.names]])


def _as_fast(features: Any) -> np.ndarray[Any, Any] | None:
    return features if isinstance(features, np.ndarray) else None
