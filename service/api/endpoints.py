"""One declaration per route: the plain Starlette route that serves it and its OpenAPI operation.

A dialect module declares its routes on an ``Endpoints`` list, much as on a FastAPI router, with
its error shape (a route may declare another)::

    api = Endpoints(tags=["predict"], errors=mlkube_error)

    @api.post("/predict", summary="...", body=PredictRequest, responses={422: ...})
    async def predict(request: Request) -> Response: ...

Why not FastAPI routes: FastAPI's per-request machinery (dependency resolution, scope
bookkeeping) costs ~90 us of CPU per request here, a third of a whole prediction, and every
handler reads the raw request anyway. So each route is served as a plain Starlette route (same
error handlers and metrics), and the API document is built from the same declaration: the body's
schema comes from its pydantic type, so the page cannot drift from what the route was declared
with (``tests/unit/service/test_openapi.py`` sends what the schema allows and the handlers agree).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from service.errors import ErrorBody, mlkube_error

Handler = Callable[[Request], Awaitable[Response]]
_PATH_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tags: tuple[str, ...]
    # The JSON body's type (a pydantic model or a union of them) and an example of it.
    body: Any = None
    example: Any = None
    # Bodies in other media types, as OpenAPI media type objects: {"text/csv": {...}}.
    other_bodies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    responses: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    # Health checks: counted apart from the request metrics (see service.metrics).
    probe: bool = False
    # The JSON body of this route's errors: its dialect's shape (see service.errors).
    errors: ErrorBody = mlkube_error

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


class Endpoints:
    """The routes of one dialect, in declaration order, each answering errors in ``errors``'s
    shape unless it declares its own."""

    def __init__(self, *, tags: list[str], errors: ErrorBody = mlkube_error) -> None:
        self.tags = tuple(tags)
        self.errors = errors
        self.endpoints: list[Endpoint] = []

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def route(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        options.setdefault("errors", self.errors)

        def declare(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(method, path, handler, tags=self.tags, **options))
            return handler

        return declare

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.endpoints)


class EndpointRoute(Route):
    """A plain Starlette route that, like FastAPI's, records itself in the scope: the metrics
    middleware labels requests with the matched route's template, and the error handlers answer
    in its dialect's shape."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint.path, endpoint.handler, methods=[endpoint.method])
        self.probe = endpoint.probe
        self.error_body = endpoint.errors

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def openapi(
    endpoints: list[Endpoint], *, title: str, version: str, description: str
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``. Assembled here rather than by FastAPI's
    ``get_openapi``, which only reads its own route objects."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for e in endpoints:
        operation: dict[str, Any] = {
            "tags": list(e.tags),
            "summary": e.summary,
            "operationId": _operation_id(e),
            "responses": _responses(e),
        }
        if e.path_params:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in e.path_params
            ]
        content: dict[str, Any] = {}
        if e.body is not None:
            schema = TypeAdapter(e.body).json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                if schemas.setdefault(name, definition) != definition:
                    raise ValueError(f"two request models are named {name!r}")
            content["application/json"] = {"schema": schema}
            if e.example is not None:
                content["application/json"]["example"] = e.example
        content.update({media: dict(spec) for media, spec in e.other_bodies.items()})
        if content:
            operation["requestBody"] = {"required": True, "content": content}
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
    }
    if schemas:
        document["components"] = {"schemas": dict(sorted(schemas.items()))}
    return document


def _operation_id(e: Endpoint) -> str:
    words = re.sub(r"[^0-9a-zA-Z]+", "_", e.path).strip("_")
    return f"{e.handler.__name__}_{words}_{e.method.lower()}"


def _responses(e: Endpoint) -> dict[str, Any]:
    responses = {str(status): dict(spec) for status, spec in sorted(e.responses.items())}
    responses.setdefault("200", {})
    for status, spec in responses.items():
        spec.setdefault("description", _DEFAULT_DESCRIPTIONS.get(status, "see the message"))
    return responses


_DEFAULT_DESCRIPTIONS = {
    "200": "Successful Response",
    "404": "not found",
    "503": "no model loaded yet",
}
