"""Bad requests get the documented 4xx with a JSON body naming the problem, never a 5xx."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.service.conftest import FEATURES, RegisteredModel

pytestmark = pytest.mark.integration

ROW = b"[5.1, 3.5, 1.4, 0.2]"
RECORD = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2'


def rows(n: int, row: bytes = b"[1,1,1,1]") -> bytes:
    return b'{"instances": [' + b",".join([row] * n) + b"]}"


# (name, body, status, error code, words in the message, field)
PREDICT_CASES = [
    ("empty body", b"", 400, "malformed_body", "empty", None),
    ("wrong JSON", b'{"instances": [', 400, "malformed_body", "not valid JSON", None),
    ("not an object or list", b'"5.1,3.5"', 422, "invalid_input", "must be a list", "instances"),
    ("wrong top-level field", b'{"rows": [[1, 2, 3, 4]]}', 422, "invalid_input",
     "unknown field 'rows'", "rows"),
    ("wrong column name", (b'{"instances": [{"sepal_len": 5.1, "sepal_width": 3.5, '
                           b'"petal_length": 1.4, "petal_width": 0.2}]}'),
     422, "invalid_input", "unknown field 'sepal_len'", "instances[0].sepal_len"),
    ("missing column", b'{"instances": [{"sepal_length": 5.1}]}', 422, "invalid_input",
     "missing field 'sepal_width'", "instances[0].sepal_width"),
    ("extra column", ('{"instances": [' + RECORD + ', "colour": "red"}]}').encode(), 422,
     "invalid_input", "unknown field 'colour'", "instances[0].colour"),
    ("too few values", b'{"instances": [[5.1, 3.5, 1.4]]}', 422, "invalid_input",
     "has 3 values; the model expects 4", "instances[0]"),
    ("string value", b'{"instances": [[5.1, "3.5", 1.4, 0.2]]}', 422, "invalid_input",
     "must be a number, got a string", "instances[0][1]"),
    ("boolean value", b'{"instances": [[5.1, true, 1.4, 0.2]]}', 422, "invalid_input",
     "got a boolean", "instances[0][1]"),
    ("null value", b'{"instances": [[5.1, null, 1.4, 0.2]]}', 422, "invalid_input", "is null",
     "instances[0][1]"),
    ("NaN", b'{"instances": [[NaN, 3.5, 1.4, 0.2]]}', 400, "malformed_body",
     "NaN and Infinity are not JSON numbers", None),
    ("Infinity", b'{"instances": [[Infinity, 3.5, 1.4, 0.2]]}', 400, "malformed_body",
     "NaN and Infinity", None),
    ("overflowing number", b'{"instances": [[1e999, 3.5, 1.4, 0.2]]}', 400, "malformed_body",
     "infinity", None),
    ("nested too deep", b'{"instances": [[[5.1, 3.5, 1.4, 0.2]]]}', 422, "invalid_input",
     "nested too deep", "instances[0]"),
    ("not nested enough", b'{"instances": [5.1, 3.5, 1.4, 0.2]}', 422, "invalid_input",
     "got a number", "instances[0]"),
    ("no rows", b'{"instances": []}', 422, "invalid_input", "empty", "instances"),
    ("10,001 rows", rows(10_001), 413, "payload_too_large",
     "10001 rows, over the limit of 10000 rows per request (SERVE_MAX_ROWS)", "instances"),
    ("10 MB body", rows(500_000, ROW), 413, "payload_too_large", "SERVE_MAX_BODY_BYTES", None),
    ("1e6 rows", rows(1_000_000), 413, "payload_too_large", "SERVE_MAX_BODY_BYTES", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "code", "words", "field"),
    [case[1:] for case in PREDICT_CASES],
    ids=[case[0] for case in PREDICT_CASES],
)
def test_predict_rejects(
    client: httpx.Client, body: bytes, status: int, code: str, words: str, field: str | None
) -> None:
    answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["error"] == code
    assert words in error["message"]
    assert error.get("field") == field


def test_invocations_limits_in_mlflows_shape(client: httpx.Client) -> None:
    big = client.post("/invocations", content=rows(500_000, ROW),
                      headers={"content-type": "application/json"})  # fmt: skip
    assert big.status_code == 413
    assert big.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    many = {"dataframe_split": {"columns": FEATURES, "data": [[1, 1, 1, 1]] * 10_001}}
    answer = client.post("/invocations", json=many)
    assert answer.status_code == 413
    assert "SERVE_MAX_ROWS" in answer.json()["message"]
    no_type = client.post("/invocations", content=b"{}", headers={"content-type": ""})
    assert no_type.status_code == 415


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES",
                      "data": ["a", "b", "c", "d"]}]}, 422, "does not fit"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
         422, "shape must be [N, 4]"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3]}]},
         422, "has 3 values but shape [1, 4] needs 4"),
        ({"inputs": "x"}, 422, "non-empty list"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
          "outputs": [{"name": "labels"}]}, 422, "outputs[0].name must be one of"),
    ],
)  # fmt: skip
def test_v2_rejects(
    client: httpx.Client, registered_model: RegisteredModel, payload: object, status: int,
    words: str,
) -> None:  # fmt: skip
    answer = client.post(f"/v2/models/{registered_model.name}/infer", json=payload)
    assert answer.status_code == status
    assert words in answer.json()["error"]


def test_the_server_still_answers_after_all_that(client: httpx.Client) -> None:
    answer = client.post("/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert answer.json()["predictions"] == ["setosa"]
