"""``POST /invocations`` exactly as ``mlflow models serve`` answers it.

Requests the fast path understands completely (JSON ``dataframe_split``, ``dataframe_records``,
``instances``/``inputs`` as records or columns, every value a finite number, exactly the model's
columns) are predicted through the micro-batcher and serialized the way MLflow does
(``json.dumps({"predictions": ...})``). Everything else (CSV, parquet, ``params``, extra or
missing columns, strings, NaN, malformed JSON...) runs MLflow's own scoring function on the
loaded pyfunc model, so status codes, error codes and messages are MLflow's, byte for byte.
The only differences: where MLflow would answer 500 because of the request (a missing
Content-Type, an exception its parser does not catch) this server answers 415 or 400, and the
body and row limits answer 413.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import orjson

from service.errors import InvalidInput
from service.model import LoadedModel
from service.schema import FeatureSchema, check_row_count

log = logging.getLogger(__name__)

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
# As MLflow lists them in its 415 message.
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, "application/vnd.apache.parquet"]
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


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
    (with ``index``, ``params`` or columns the fast path does not take) and CSV. Raises
    PayloadTooLarge naming the field; leaves anything it cannot count to MLflow's answer."""
    mime = (content_type or "").partition(";")[0].strip()
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


def predictions_json(labels: np.ndarray[Any, Any]) -> bytes:
    """MLflow's success body: ``json.dump({"predictions": ...})`` with the default separators."""
    return json.dumps({"predictions": labels.tolist()}).encode()


def mlflow_invocations(
    body: bytes, content_type: str | None, model: LoadedModel
) -> tuple[int, str | bytes, str]:
    """MLflow's own ``/invocations`` logic on the loaded model: (status, body, media type).
    Runs in a worker thread (pandas parsing and schema enforcement are slow)."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server as _scoring_server

    scoring_server: Any = _scoring_server  # untyped module

    if content_type is None:  # MLflow crashes (500) on this; answer its own 415
        return (
            415,
            "This predictor only supports the following content types: "
            f"Types: {CONTENT_TYPES}. Got 'None'.",
            "text/plain",
        )
    try:
        result = scoring_server.invocations(body, content_type, model.pyfunc, model.input_schema)
    except MlflowException as exc:
        error: Any = exc
        return error.get_http_status_code(), error.serialize_as_json(), CONTENT_TYPE_JSON
    except Exception as exc:  # MLflow would answer 500; it is the request's fault
        log.info("invocations: MLflow's parser failed on the request: %r", exc)
        message = f"Invalid request: {type(exc).__name__}: {exc}"
        return (
            400,
            json.dumps({"error_code": "BAD_REQUEST", "message": message}),
            "application/json",
        )
    return result.status, result.response, result.mimetype
