"""Typed domain errors and the one place that turns them into HTTP answers.

Each error knows its status code. The JSON shape follows the dialect of the route that failed, so
every client sees errors in the format it already parses:

- mlkube routes: ``{"error": "invalid_input", "message": "...", "field": "instances[0].x"}``
- ``/invocations`` (as ``mlflow models serve``): ``{"error_code": "BAD_REQUEST", "message": "..."}``
- ``/v2/...`` (Open Inference Protocol): ``{"error": "..."}``
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

INVOCATIONS_PATH = "/invocations"
V2_PREFIX = "/v2"


class ServiceError(Exception):
    """Base of every error the service answers on purpose."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    mlflow_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class MalformedBody(ServiceError):
    """The body is not what the route reads at all (not JSON, not UTF-8...)."""

    status_code = 400
    code = "malformed_body"
    mlflow_code = "BAD_REQUEST"


class InvalidInput(ServiceError):
    """Well-formed JSON whose content does not fit the model's signature."""

    status_code = 422
    code = "invalid_input"
    mlflow_code = "BAD_REQUEST"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"
    mlflow_code = "REQUEST_LIMIT_EXCEEDED"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"
    mlflow_code = "BAD_REQUEST"


class ModelNotFound(ServiceError):
    """A v2 request names a model or version this server does not serve."""

    status_code = 404
    code = "model_not_found"
    mlflow_code = "RESOURCE_DOES_NOT_EXIST"


class ModelNotLoaded(ServiceError):
    status_code = 503
    code = "model_not_loaded"
    mlflow_code = "TEMPORARILY_UNAVAILABLE"


class NotSupportedByModel(ServiceError):
    """The loaded model cannot answer this route (e.g. no column signature to validate against)."""

    status_code = 501
    code = "not_supported_by_model"
    mlflow_code = "NOT_IMPLEMENTED"


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def render(path: str, status_code: int, code: str, mlflow_code: str, message: str,
           field: str | None = None) -> Response:  # fmt: skip
    """The error answer in the dialect of the route at ``path``."""
    body: dict[str, Any]
    if path == INVOCATIONS_PATH:
        body = {"error_code": mlflow_code, "message": message}
    elif path == V2_PREFIX or path.startswith(V2_PREFIX + "/"):
        body = {"error": message}
    else:
        body = {"error": code, "message": message}
        if field is not None:
            body["field"] = field
    return json_response(body, status_code)


def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return render(
        request.url.path, exc.status_code, exc.code, exc.mlflow_code, exc.message, exc.field
    )


_HTTP_CODES = {404: ("not_found", "ENDPOINT_NOT_FOUND"), 405: ("method_not_allowed", "BAD_REQUEST")}


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, mlflow_code = _HTTP_CODES.get(exc.status_code, ("http_error", "BAD_REQUEST"))
    response = render(request.url.path, exc.status_code, code, mlflow_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    field = ".".join(str(part) for part in first.get("loc", ()))
    message = f"{field}: {first.get('msg', 'invalid')}" if field else "invalid request"
    return render(request.url.path, 422, "invalid_input", "BAD_REQUEST", message, field or None)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return render(
        request.url.path, 500, "internal_error", "INTERNAL_ERROR",
        f"internal error: {type(exc).__name__}; see the server log",
    )  # fmt: skip


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
