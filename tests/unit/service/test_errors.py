"""Each dialect's error shape: the route a request matched answers in its dialect's shape, a
request that matched none in the shape of the dialect whose prefix it is under, else mlkube's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from service.api import mlflow
from service.app import create_app
from service.errors import (
    InvalidInput,
    MalformedBody,
    ModelNotFound,
    ModelNotLoaded,
    NotSupportedByModel,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)
from service.settings import Settings


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(MODEL_NAME="iris"))


def handle(app: FastAPI, method: str, path: str, exc: Exception) -> Response:
    """What the app's handler for ``exc`` answers on ``method path``, routed as Starlette routes
    (the first full match, else the first partial one: a 405)."""
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": "",
                             "query_string": b"", "headers": [], "app": app}  # fmt: skip
    partial = None
    for route in app.router.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            scope.update(child)
            break
        if match is Match.PARTIAL and partial is None:
            partial = child
    else:
        if partial is not None:
            scope.update(partial)
    handler = app.exception_handlers[ServiceError if isinstance(exc, ServiceError) else Exception]
    response = handler(Request(scope), exc)
    assert isinstance(response, Response)
    return response


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/predict", {"error": "invalid_input", "message": "bad", "field": "instances[0]"}),
        ("/invocations", {"error_code": "BAD_REQUEST", "message": "bad"}),
        ("/v2/models/iris/infer", {"error": "bad"}),
        ("/v2", {"error": "bad"}),
        ("/v2x", {"error": "invalid_input", "message": "bad", "field": "instances[0]"}),
    ],
)
def test_render(app: FastAPI, path: str, expected: dict[str, str]) -> None:
    response = handle(app, "POST", path, InvalidInput("bad", field="instances[0]"))
    assert response.status_code == 422
    assert response.media_type == "application/json"
    assert json.loads(bytes(response.body)) == expected


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/predict", {"error": "internal_error", "message": "internal error: "
                              "RuntimeError; see the server log"}),
        ("POST", "/invocations", {"error_code": "INTERNAL_ERROR", "message": "internal error: "
                                  "RuntimeError; see the server log"}),
        ("POST", "/v2/models/iris/infer", {"error": "internal error: RuntimeError; see the "
                                           "server log"}),
        ("GET", "/ping", {"error": "internal_error", "message": "internal error: RuntimeError; "
                          "see the server log"}),
    ],
)  # fmt: skip
def test_an_unexpected_error_in_each_dialect(
    app: FastAPI, method: str, path: str, expected: dict[str, str]
) -> None:
    response = handle(app, method, path, RuntimeError("boom"))
    assert response.status_code == 500
    assert json.loads(bytes(response.body)) == expected


def test_mlflow_names_every_error_as_before() -> None:
    classes = (ServiceError, MalformedBody, InvalidInput, PayloadTooLarge, UnsupportedMediaType,
               ModelNotFound, ModelNotLoaded, NotSupportedByModel)  # fmt: skip
    codes = {cls: mlflow.error_body(cls("m").problem())["error_code"] for cls in classes}
    assert codes == {
        ServiceError: "INTERNAL_ERROR",
        MalformedBody: "BAD_REQUEST",
        InvalidInput: "BAD_REQUEST",
        PayloadTooLarge: "REQUEST_LIMIT_EXCEEDED",
        UnsupportedMediaType: "BAD_REQUEST",
        ModelNotFound: "RESOURCE_DOES_NOT_EXIST",
        ModelNotLoaded: "TEMPORARILY_UNAVAILABLE",
        NotSupportedByModel: "NOT_IMPLEMENTED",
    }


def test_every_error_has_an_mlflow_code() -> None:
    """A new error class gets its MLflow code declared, not a guess."""

    def subclasses(cls: type[ServiceError]) -> list[type[ServiceError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    assert {cls.code for cls in subclasses(ServiceError)} <= set(mlflow.ERROR_CODES)
