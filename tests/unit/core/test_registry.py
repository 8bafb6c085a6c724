"""One classification of MLflow's errors for every component: the gate, the operator and the
model server agree on what "nothing registered yet" is."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2

from mlkube.core.backoff import Backoff
from mlkube.core.registry import classify, short


@pytest.mark.parametrize(
    ("message", "code", "outcome"),
    [
        ("Registered Model with name=m not found", "RESOURCE_DOES_NOT_EXIST", "not-found"),
        ("Registered model alias production not found.", "INVALID_PARAMETER_VALUE", "not-found"),
        # An invalid name is not "no champion": the gate must not promote over it.
        ("Invalid model name: ''", "INVALID_PARAMETER_VALUE", "refused"),
        ("Permission denied", "PERMISSION_DENIED", "refused"),
        ("Internal error", "INTERNAL_ERROR", "unavailable"),
        ("Too many requests", "REQUEST_LIMIT_EXCEEDED", "unavailable"),
    ],
)
def test_classify(message: str, code: str, outcome: str) -> None:
    error = MlflowException(message, error_code=getattr(databricks_pb2, code))
    assert classify(error) == outcome


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = Backoff(first=0.5, cap=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_short_is_one_bounded_line() -> None:
    text = short(RuntimeError("a\n b " + "x" * 500), limit=50)
    assert len(text) == 50
    assert "\n" not in text
