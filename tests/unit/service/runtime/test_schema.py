"""Request rows -> model input: the fast path, and errors that name the offending row/field."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from service.errors import InvalidInput, PayloadTooLarge
from service.runtime.schema import Column, FeatureSchema

IRIS = FeatureSchema.of(
    ("sepal_length", "double"), ("sepal_width", "double"),
    ("petal_length", "double"), ("petal_width", "double"),
)  # fmt: skip
ROW = [5.1, 3.5, 1.4, 0.2]
RECORD = dict(zip(IRIS.names, ROW, strict=True))


def rows(instances: Any, schema: FeatureSchema = IRIS, max_rows: int = 100) -> Any:
    return schema.rows(instances, where="instances", max_rows=max_rows)


def test_lists_and_records_give_the_same_float_matrix() -> None:
    by_position = rows([ROW, [6, 3, 5, 2]])
    by_name = rows([RECORD, {"petal_width": 2, "petal_length": 5, "sepal_width": 3,
                             "sepal_length": 6}])  # fmt: skip
    mixed = rows([ROW, {"petal_width": 2, "petal_length": 5, "sepal_width": 3,
                        "sepal_length": 6}])  # fmt: skip
    expected = np.array([ROW, [6.0, 3.0, 5.0, 2.0]])
    for got in (by_position, by_name, mixed):
        assert isinstance(got, np.ndarray)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, expected)


def test_columns_give_the_same_matrix_as_rows() -> None:
    got = IRIS.columns_input(
        {name: [value, value + 1] for name, value in RECORD.items()},
        where="inputs", max_rows=10,
    )  # fmt: skip
    np.testing.assert_array_equal(got, np.array([ROW, [v + 1 for v in ROW]]))
    assert got.flags.c_contiguous


@pytest.mark.parametrize(
    ("instances", "field", "words"),
    [
        ([[5.1, "3.5", 1.4, 0.2]], "instances[0][1]", "must be a number, got a string '3.5'"),
        ([ROW, [5.1, True, 1.4, 0.2]], "instances[1][1]", "got a boolean"),
        ([[5.1, None, 1.4, 0.2]], "instances[0][1]", "is null"),
        ([[5.1, math.nan, 1.4, 0.2]], "instances[0][1]", "finite"),
        ([[5.1, math.inf, 1.4, 0.2]], "instances[0][1]", "finite"),
        ([[5.1, 3.5, 1.4]], "instances[0]", "has 3 values; the model expects 4"),
        ([[5.1, 3.5, 1.4, 0.2, 9.9]], "instances[0]", "has 5 values"),
        ([[[5.1, 3.5, 1.4, 0.2]]], "instances[0]", "nested too deep"),
        ([{**RECORD, "colour": 1}], "instances[0].colour", "unknown field 'colour'"),
        (
            [{k: v for k, v in RECORD.items() if k != "petal_width"}],
            "instances[0].petal_width",
            "missing field 'petal_width'",
        ),
        ([{**RECORD, "sepal_length": "long"}], "instances[0].sepal_length", "must be a number"),
        ([ROW, "5.1,3.5"], "instances[1]", "got a string"),
        ([], "instances", "empty"),
        ({"sepal_length": 1}, "instances", "must be a list of rows"),
    ],
)
def test_bad_rows_name_the_row_and_field(instances: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as err:
        rows(instances)
    assert err.value.field == field
    assert words in err.value.message
    assert err.value.status_code == 422


def test_too_many_rows_names_the_limit() -> None:
    with pytest.raises(PayloadTooLarge) as err:
        rows([ROW] * 11, max_rows=10)
    assert "11 rows" in err.value.message
    assert "SERVE_MAX_ROWS" in err.value.message
    assert err.value.status_code == 413


def test_columns_errors() -> None:
    with pytest.raises(InvalidInput, match="different lengths"):
        IRIS.columns_input({n: [1.0] * (i + 1) for i, n in enumerate(IRIS.names)},
                           where="inputs", max_rows=10)  # fmt: skip
    with pytest.raises(InvalidInput, match="missing column 'petal_width'"):
        IRIS.columns_input({n: [1.0] for n in IRIS.names[:3]}, where="inputs", max_rows=10)
    with pytest.raises(InvalidInput) as err:
        IRIS.columns_input({**{n: [1.0, 2.0] for n in IRIS.names}, "sepal_width": [1.0, "x"]},
                           where="inputs", max_rows=10)  # fmt: skip
    assert err.value.field == "inputs[1].sepal_width"


def test_typed_columns_build_a_typed_frame() -> None:
    schema = FeatureSchema((Column("age", "long"), Column("name", "string"),
                            Column("member", "boolean"), Column("score", "float"),
                            Column("note", "string", required=False)))  # fmt: skip
    assert not schema.all_double
    frame = schema.rows([[41, "ada", True, 1.5, None], {"age": 7, "name": "bo", "member": False,
                         "score": 2}], where="instances", max_rows=5)  # fmt: skip
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["age", "name", "member", "score", "note"]
    assert frame["age"].dtype == np.int64
    assert frame["member"].dtype == np.bool_
    assert frame["score"].dtype == np.float32
    assert frame["age"].tolist() == [41, 7]
    with pytest.raises(InvalidInput, match=r"\(age\) must be an integer, got a number 4.5") as e:
        schema.rows([[4.5, "a", True, 1.0, None]], where="instances", max_rows=5)
    assert e.value.field == "instances[0][0]"
    with pytest.raises(InvalidInput, match="must be true or false"):
        schema.rows([[4, "a", 1, 1.0, None]], where="instances", max_rows=5)
    with pytest.raises(InvalidInput, match="must be a string"):
        schema.rows([[4, 5, True, 1.0, None]], where="instances", max_rows=5)
    with pytest.raises(InvalidInput, match="out of range"):
        schema.rows([[2**70, "a", True, 1.0, None]], where="instances", max_rows=5)


def test_from_mlflow_reads_column_signatures_and_declines_the_rest() -> None:
    from mlflow.types import ColSpec, Schema, TensorSpec

    schema = FeatureSchema.from_mlflow(
        Schema([ColSpec("double", "a"), ColSpec("long", "b", required=False)])
    )
    assert schema == FeatureSchema((Column("a", "double"), Column("b", "long", False)))
    assert FeatureSchema.from_mlflow(None) is None
    assert FeatureSchema.from_mlflow(Schema([TensorSpec(np.dtype("float64"), (-1, 4))])) is None
    assert FeatureSchema.from_mlflow(Schema([ColSpec("binary", "blob")])) is None
    with pytest.raises(ValueError, match="duplicate"):
        FeatureSchema.of(("a", "double"), ("a", "double"))
