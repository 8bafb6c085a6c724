"""Kubernetes probes: live is always 200 (the process answers); ready is 503 until a model is
loaded, so no traffic reaches a pod that cannot predict."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.api.endpoints import Endpoints
from service.dataplane import plane
from service.errors import json_response

api = Endpoints(tags=["health"])

_READY_EXAMPLE = {"status": "ready", "model_name": "iris-classifier", "model_version": "3"}
_LOADING_EXAMPLE = {
    "status": "loading",
    "model": "models:/iris-classifier@production",
    "attempts": 3,
    "last_error": "URLError: <urlopen error [Errno 111] Connection refused>",
}


@api.get("/healthz/live", summary="Liveness: 200 while the process answers", probe=True)
async def live(_request: Request) -> Response:
    return json_response({"status": "alive"})


@api.get(
    "/healthz/ready",
    summary="Readiness: 200 once the model is loaded, 503 before",
    probe=True,
    responses={
        200: {"content": {"application/json": {"example": _READY_EXAMPLE}}},
        503: {"content": {"application/json": {"example": _LOADING_EXAMPLE}}},
    },
)
async def ready(request: Request) -> Response:
    return readiness(request)


def readiness(request: Request) -> Response:
    state = plane(request).readiness()
    model = state.model
    if model is not None:
        body: dict[str, Any] = {
            "status": "ready",
            "model_name": model.info.name,
            "model_version": model.info.version,
        }
        return json_response(body)
    return json_response(
        {
            "status": "loading",
            "model": state.target,
            "attempts": state.attempts,
            "last_error": state.last_error,
        },
        503,
    )
