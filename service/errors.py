"""Typed domain errors and the one place that turns them into HTTP answers.

Each error knows its status code and mlkube's code for it. Its JSON body is the dialect's: each
route is declared with its dialect's error shape (``service.api.endpoints``), so every client sees
errors in the format it already parses:

- mlkube's own (``/predict``, and every route that declares no other):
  ``{"error": "invalid_input", "message": "...", "field": "instances[0].x"}`` (:func:`mlkube_error`)
- ``/invocations``, as ``mlflow models serve``: ``{"error_code": "BAD_REQUEST", "message": "..."}``
  (``service.api.mlflow``)
- ``/v2/...``, the Open Inference Protocol: ``{"error": "..."}`` (``service.api.v2``)

A request that matched no route (404) gets the shape of the dialect whose prefix its path is
under (``/v2``), else mlkube's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """An error before a dialect shapes it: the status, mlkube's code, the message and, for an
    input error, the field."""

    status_code: int
    code: str
    message: str
    field: str | None = None


# A dialect's error shape: the JSON body it answers for a problem.
ErrorBody = Callable[[Problem], dict[str, Any]]


class ServiceError(Exception):
    """Base of every error the service answers on purpose."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def problem(self) -> Problem:
        return Problem(self.status_code, self.code, self.message, self.field)


class MalformedBody(ServiceError):
    """The body is not what the route reads at all (not JSON, not UTF-8...)."""

    status_code = 400
    code = "malformed_body"


class InvalidInput(ServiceError):
    """Well-formed JSON whose content does not fit the model's signature."""

    status_code = 422
    code = "invalid_input"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class ModelNotFound(ServiceError):
    """A v2 request names a model or version this server does not serve."""

    status_code = 404
    code = "model_not_found"


class ModelNotLoaded(ServiceError):
    status_code = 503
    code = "model_not_loaded"


class NotSupportedByModel(ServiceError):
    """The loaded model cannot answer this route (e.g. no column signature to validate against)."""

    status_code = 501
    code = "not_supported_by_model"


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def mlkube_error(problem: Problem) -> dict[str, Any]:
    """mlkube's own error shape: ``/predict``'s, and that of every route declaring no other."""
    body: dict[str, Any] = {"error": problem.code, "message": problem.message}
    if problem.field is not None:
        body["field"] = problem.field
    return body


def error_body(request: Request, unrouted: Mapping[str, ErrorBody]) -> ErrorBody:
    """The error shape of the route the request matched (``EndpointRoute.error_body``); for a
    request that matched none, that of the dialect whose prefix (in ``unrouted``) its path is
    under; else mlkube's."""
    shape: ErrorBody | None = getattr(request.scope.get("route"), "error_body", None)
    if shape is not None:
        return shape
    path = request.url.path
    for prefix, shape in unrouted.items():
        if path == prefix or path.startswith(prefix + "/"):
            return shape
    return mlkube_error


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def install_error_handlers(app: FastAPI, unrouted: Mapping[str, ErrorBody]) -> None:
    """Every error, answered in the shape of the dialect that failed (see :func:`error_body`)."""

    def answer(request: Request, problem: Problem) -> Response:
        body = error_body(request, unrouted)(problem)
        return json_response(body, problem.status_code)

    def service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return answer(request, exc.problem())

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        response = answer(request, Problem(exc.status_code, code, str(exc.detail)))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(part) for part in first.get("loc", ()))
        message = f"{field}: {first.get('msg', 'invalid')}" if field else "invalid request"
        return answer(request, Problem(422, "invalid_input", message, field or None))

    def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        message = f"internal error: {type(exc).__name__}; see the server log"
        return answer(request, Problem(500, "internal_error", message))

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
