"""Open Inference Protocol v2 (KServe, Triton, MLServer): request parsing and answers.

A request carries either one tensor of shape ``[N, <number of features>]`` (data flat or nested,
row-major), or one tensor per feature, named like the signature's columns, each of shape ``[N]``
(MLServer's pandas codec). Outputs follow MLServer's scikit-learn runtime: ``predict`` (the
default) and ``predict_proba`` (ask for it in ``outputs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from math import prod
from typing import Any

import numpy as np

from service.errors import InvalidInput
from service.model import Array, LoadedModel
from service.schema import V2_DATATYPES, Features, FeatureSchema, check_row_count

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
_NUMERIC = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64",
            "UINT8", "UINT16", "UINT32", "UINT64"}  # fmt: skip
DATATYPES = _NUMERIC | {"BOOL", "BYTES"}
_KIND_DATATYPES = {"double": _NUMERIC, "float": _NUMERIC, "long": _NUMERIC, "integer": _NUMERIC,
                   "boolean": {"BOOL"}, "string": {"BYTES"}}  # fmt: skip


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    features: Features
    outputs: tuple[str, ...]


def parse_infer_request(
    payload: Any, model: LoadedModel, schema: FeatureSchema, max_rows: int
) -> InferRequest:
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
    return InferRequest(request_id, features, _outputs(payload.get("outputs"), model))


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
        raise InvalidInput(f"{where}.shape must be a list of non-negative integers",
                           field=f"{where}.shape")  # fmt: skip
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
        raise InvalidInput(f"{where}.data holds non-integers but datatype is {datatype}",
                           field=f"{where}.data")  # fmt: skip
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
    request: InferRequest, model: LoadedModel, labels: Array, proba: Array | None
) -> dict[str, Any]:
    outputs: list[dict[str, Any]] = []
    for name in request.outputs:
        if name == PREDICT:
            outputs.append({"name": PREDICT, "datatype": label_datatype(labels),
                            "shape": [len(labels)], "data": labels.tolist()})  # fmt: skip
        elif proba is not None:
            outputs.append(
                {"name": PREDICT_PROBA, "datatype": "FP64", "shape": list(proba.shape),
                 "data": proba.ravel().tolist()}
            )  # fmt: skip
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


def features_rows(features: Features) -> int:
    return int(features.shape[0]) if isinstance(features, np.ndarray) else len(features)
