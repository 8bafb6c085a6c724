"""The model's input signature, and turning request rows into model input.

The common case (every column a float64, as the Iris pipeline) goes through a fast path: one pass
over the value types, one ``numpy`` conversion. Anything the fast path does not accept is walked
row by row to find the first offending row and field, so the error names it. Other column types
(int, bool, string) build a typed ``pandas.DataFrame``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, Literal

import numpy as np
import pandas as pd

from service.errors import InvalidInput, PayloadTooLarge

Kind = Literal["double", "float", "long", "integer", "boolean", "string"]
KINDS: tuple[Kind, ...] = ("double", "float", "long", "integer", "boolean", "string")
_NUMPY_DTYPES: dict[Kind, Any] = {
    "double": np.float64,
    "float": np.float32,
    "long": np.int64,
    "integer": np.int32,
    "boolean": np.bool_,
    "string": object,
}
# Open Inference Protocol v2 datatype of each kind.
V2_DATATYPES: dict[Kind, str] = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
}
_NUMBER_TYPES = frozenset({int, float})

# A model input: a float64 matrix (fast path) or a typed frame.
Features = np.ndarray[Any, Any] | pd.DataFrame


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True


@dataclass(frozen=True)
class FeatureSchema:
    """Named, typed input columns, in the model's order."""

    columns: tuple[Column, ...]
    names: tuple[str, ...] = field(init=False)
    names_list: list[str] = field(init=False, repr=False, compare=False)
    name_set: frozenset[str] = field(init=False)
    all_double: bool = field(init=False)
    _getter: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.columns)
        if not names:
            raise ValueError("a feature schema needs at least one column")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in {names}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "names_list", list(names))
        object.__setattr__(self, "name_set", frozenset(names))
        object.__setattr__(
            self, "all_double", all(c.kind == "double" and c.required for c in self.columns)
        )
        # itemgetter of one key returns the value, not a 1-tuple: wrap it.
        getter = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
        object.__setattr__(self, "_getter", getter)

    @classmethod
    def of(cls, *columns: tuple[str, Kind]) -> FeatureSchema:
        return cls(tuple(Column(name, kind) for name, kind in columns))

    @classmethod
    def from_mlflow(cls, schema: Any) -> FeatureSchema | None:
        """From an MLflow input ``Schema``; None when it is missing, tensor-based, or uses a type
        this module does not validate (those models are served through MLflow's own parser)."""
        if schema is None or schema.is_tensor_spec():
            return None
        columns = []
        for spec in schema.inputs:
            kind = getattr(spec.type, "name", None)
            if spec.name is None or kind not in KINDS:
                return None
            columns.append(Column(spec.name, kind, bool(spec.required)))
        return cls(tuple(columns)) if columns else None

    def describe(self) -> str:
        return ", ".join(self.names)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"name": c.name, "type": c.kind, "required": c.required} for c in self.columns]

    # -- rows -------------------------------------------------------------------------------

    def rows(self, instances: Any, *, where: str, max_rows: int) -> Features:
        """Rows given as lists (in column order) or objects (by name) -> model input.

        Raises InvalidInput naming ``where[i]`` / ``where[i].column`` for the first bad value, and
        PayloadTooLarge when there are more than ``max_rows`` rows."""
        if not isinstance(instances, list):
            raise InvalidInput(
                f"{where} must be a list of rows, got {_type_name(instances)}", field=where
            )
        check_row_count(len(instances), max_rows, where)
        if self.all_double:
            fast = self._fast_double_rows(instances)
            if fast is not None:
                return fast
        return self._slow_rows(instances, where)

    def _fast_double_rows(self, instances: list[Any]) -> np.ndarray[Any, Any] | None:
        first = type(instances[0])
        if first is list:
            if not all(type(r) is list for r in instances):
                return None
            values: Sequence[Sequence[Any]] = instances
        elif first is dict:
            name_set = self.name_set
            if not all(type(r) is dict and r.keys() == name_set for r in instances):
                return None
            values = list(map(self._getter, instances))
        else:
            return None
        if not set(map(type, chain.from_iterable(values))) <= _NUMBER_TYPES:
            return None
        try:
            array = np.array(values, dtype=np.float64)
        except (ValueError, OverflowError):  # ragged rows, ints beyond float range
            return None
        if array.shape != (len(instances), len(self.names)) or not np.isfinite(array).all():
            return None
        return array

    def _slow_rows(self, instances: list[Any], where: str) -> Features:
        """Validate every value, naming the first problem; build the typed input."""
        table: list[tuple[Any, ...]] = []
        for i, row in enumerate(instances):
            at = f"{where}[{i}]"
            if isinstance(row, list):
                if any(isinstance(v, list | dict) for v in row):
                    raise InvalidInput(
                        f"{at} is nested too deep: each row is a flat list of "
                        f"{len(self.columns)} values ({self.describe()})",
                        field=at,
                    )
                if len(row) != len(self.columns):
                    raise InvalidInput(
                        f"{at} has {len(row)} values; the model expects {len(self.columns)} "
                        f"({self.describe()})",
                        field=at,
                    )
                values = tuple(
                    _check(v, c, f"{at}[{j}]", f"{at}[{j}] ({c.name})")
                    for j, (v, c) in enumerate(zip(row, self.columns, strict=True))
                )
            elif isinstance(row, dict):
                unknown = [k for k in row if k not in self.name_set]
                if unknown:
                    raise InvalidInput(
                        f"{at} has unknown field {unknown[0]!r}; the model expects "
                        f"{self.describe()}",
                        field=f"{at}.{unknown[0]}",
                    )
                values = tuple(self._named_value(row, c, at) for c in self.columns)
            else:
                raise InvalidInput(
                    f"{at} must be a list of {len(self.columns)} values or an object with "
                    f"fields {self.describe()}, got {_type_name(row)}",
                    field=at,
                )
            table.append(values)
        return self._build(table)

    def _named_value(self, row: dict[str, Any], column: Column, at: str) -> Any:
        if column.name not in row or row[column.name] is None:
            if column.required:
                raise InvalidInput(
                    f"{at} is missing field {column.name!r}", field=f"{at}.{column.name}"
                )
            return None
        where = f"{at}.{column.name}"
        return _check(row[column.name], column, where, where)

    # -- columns ----------------------------------------------------------------------------

    def columns_input(self, columns: Any, *, where: str, max_rows: int) -> Features:
        """Columns given as ``{name: [values...]}`` -> model input (same checks as rows)."""
        if not isinstance(columns, dict):
            raise InvalidInput(
                f"{where} must be an object of columns, got {_type_name(columns)}", field=where
            )
        if self.all_double and columns.keys() == self.name_set:
            fast = self._fast_double_columns([columns[n] for n in self.names], where, max_rows)
            if fast is not None:
                return fast
        unknown = [k for k in columns if k not in self.name_set]
        if unknown:
            raise InvalidInput(
                f"{where} has unknown column {unknown[0]!r}; the model expects {self.describe()}",
                field=f"{where}.{unknown[0]}",
            )
        missing = [c.name for c in self.columns if c.required and c.name not in columns]
        if missing:
            raise InvalidInput(
                f"{where} is missing column {missing[0]!r}", field=f"{where}.{missing[0]}"
            )
        lengths = set()
        for name, values in columns.items():
            if not isinstance(values, list):
                raise InvalidInput(
                    f"{where}.{name} must be a list of values, got {_type_name(values)}",
                    field=f"{where}.{name}",
                )
            lengths.add(len(values))
        if len(lengths) != 1:
            raise InvalidInput(
                f"the columns of {where} have different lengths: {sorted(lengths)}", field=where
            )
        n = lengths.pop()
        check_row_count(n, max_rows, where)
        rows = [
            {name: values[i] for name, values in columns.items()} for i in range(n)
        ]  # per-row dicts: the row checks then name the exact cell
        return self.rows(rows, where=where, max_rows=max_rows)

    def _fast_double_columns(
        self, cols: list[Any], where: str, max_rows: int
    ) -> np.ndarray[Any, Any] | None:
        if not all(type(c) is list for c in cols) or len({len(c) for c in cols}) != 1:
            return None
        check_row_count(len(cols[0]), max_rows, where)
        if not set(map(type, chain.from_iterable(cols))) <= _NUMBER_TYPES:
            return None
        try:
            array = np.ascontiguousarray(np.array(cols, dtype=np.float64).T)
        except (ValueError, OverflowError):
            return None
        return array if np.isfinite(array).all() else None

    def _build(self, table: list[tuple[Any, ...]]) -> Features:
        if self.all_double:
            return np.array(table, dtype=np.float64).reshape(len(table), len(self.columns))
        frame = pd.DataFrame.from_records(table, columns=list(self.names))
        for c in self.columns:
            if c.required or not frame[c.name].isna().any():
                frame[c.name] = frame[c.name].astype(_NUMPY_DTYPES[c.kind])
        return frame


def check_row_count(n: int, max_rows: int, where: str) -> None:
    if n == 0:
        raise InvalidInput(f"{where} is empty: send at least one row", field=where)
    if n > max_rows:
        raise PayloadTooLarge(
            f"{where} has {n} rows, over the limit of {max_rows} rows per request "
            "(SERVE_MAX_ROWS): split the request",
            field=where,
        )


def _check(value: Any, column: Column, field: str, at: str) -> Any:
    """One value against its column type (``at`` names it in messages, ``field`` in the error's
    field); returns it."""
    kind = column.kind
    t = type(value)
    if value is None:
        if column.required:
            raise InvalidInput(f"{at} is null; the model needs a {kind} here", field=field)
        return None
    if kind in ("double", "float"):
        if t is not int and t is not float:
            raise InvalidInput(f"{at} must be a number, got {_describe(value)}", field=field)
        if t is float and not math.isfinite(value):
            raise InvalidInput(f"{at} must be a finite number, got {value}", field=field)
        if t is int and abs(value) > 2**1023:
            raise InvalidInput(f"{at} is out of range for a {kind}", field=field)
        return value
    if kind in ("long", "integer"):
        if t is not int:
            raise InvalidInput(f"{at} must be an integer, got {_describe(value)}", field=field)
        bits = 63 if kind == "long" else 31
        if not -(2**bits) <= value < 2**bits:
            raise InvalidInput(f"{at} is out of range for a {kind}", field=field)
        return value
    if kind == "boolean":
        if t is not bool:
            raise InvalidInput(f"{at} must be true or false, got {_describe(value)}", field=field)
        return value
    if t is not str:
        raise InvalidInput(f"{at} must be a string, got {_describe(value)}", field=field)
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _describe(value: Any) -> str:
    text = repr(value) if isinstance(value, str | bool | int | float) else ""
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{_type_name(value)} {text}".rstrip()
