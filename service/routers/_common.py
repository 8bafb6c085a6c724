"""What every router needs: the service state and a bounded body read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from fastapi import Request

from service.batching import Predictor
from service.errors import MalformedBody, PayloadTooLarge
from service.metrics import Metrics
from service.registry import ModelStore
from service.settings import Settings

# Reading (and dropping) at most this much of an oversized body lets the client finish sending
# and read the 413, instead of seeing its connection reset mid-upload.
_DRAIN_LIMIT = 64 * 1024 * 1024


@dataclass
class ServiceState:
    settings: Settings
    store: ModelStore
    metrics: Metrics
    predictor: Predictor
    started_at: datetime


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def content_type(request: Request) -> str | None:
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1"))
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or PayloadTooLarge naming the limit (SERVE_MAX_BODY_BYTES).

    Reads the ASGI messages directly (Starlette's ``body()`` goes through an async generator:
    measurably slower on the hot path) and counts as it goes, so a body without (or lying
    about) Content-Length is bounded too."""
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedBody("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > _DRAIN_LIMIT:
            break
        if not message.get("more_body", False):
            break
    if size > limit:
        raise PayloadTooLarge(
            f"the request body is {'over ' if size > _DRAIN_LIMIT else ''}{size} bytes, over the "
            f"limit of {limit} bytes (SERVE_MAX_BODY_BYTES)"
        )
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json(body: bytes) -> Any:
    if not body:
        raise MalformedBody("the request body is empty: send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if b"NaN" in body or b"Infinity" in body:
            hint = " (NaN and Infinity are not JSON numbers: send finite numbers)"
        raise MalformedBody(f"the request body is not valid JSON: {exc}{hint}") from exc
