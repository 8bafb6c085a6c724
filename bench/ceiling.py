"""The ceiling for ``make bench``: a bare FastAPI endpoint on the same uvicorn settings that
answers a constant JSON without reading the request (no model, no parsing)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()
_BODY = b'{"predictions": ["setosa"]}'


@app.get("/ping")
async def ping() -> Response:
    return Response(b"\n", media_type="application/json")


@app.post("/invocations")
async def invocations() -> Response:
    return Response(_BODY, media_type="application/json")
