"""Kubernetes probes: live is always 200 (the process answers); ready is 503 until a model is
loaded, so no traffic reaches a pod that cannot predict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.errors import json_response
from service.routers._common import state_of

router = APIRouter(prefix="/healthz", tags=["health"])

_READY_EXAMPLE = {"status": "ready", "model_name": "iris-classifier", "model_version": "3"}
_LOADING_EXAMPLE = {
    "status": "loading",
    "model": "models:/iris-classifier@production",
    "attempts": 3,
    "last_error": "URLError: <urlopen error [Errno 111] Connection refused>",
}


@router.get("/live", summary="Liveness: 200 while the process answers")
async def live() -> Response:
    return json_response({"status": "alive"})


@router.get(
    "/ready",
    summary="Readiness: 200 once the model is loaded, 503 before",
    responses={
        200: {"content": {"application/json": {"example": _READY_EXAMPLE}}},
        503: {"content": {"application/json": {"example": _LOADING_EXAMPLE}}},
    },
)
async def ready(request: Request) -> Response:
    return readiness(request)


def readiness(request: Request) -> Response:
    state = state_of(request)
    model = state.store.current
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
            "model": state.settings.model_uri_description,
            "attempts": state.store.attempts,
            "last_error": state.store.last_error,
        },
        503,
    )
