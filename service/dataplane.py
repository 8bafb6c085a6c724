"""The data plane: what every dialect does with a request, written once, offered as verbs.

Each dialect (``service.api.predict``, ``.mlflow``, ``.v2``) parses its request format into
features and formats the answer; it asks the plane whether a model is ready, which model is
served (``model_info``), to read the body within the limit, to ``infer`` features (through the
micro-batcher) and to ``invoke`` MLflow's own scoring for what the fast path does not take. The
plane counts what it predicted. It is the only part that holds the loader's store, the settings
and the metrics: the dialects never reach into them (as KServe's ``DataPlane`` serves its v1 and
v2 protocols).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import generate_latest
from starlette.requests import Request

from service.errors import MalformedBody, ModelNotFound, PayloadTooLarge
from service.loader import ModelStore
from service.metrics import Metrics
from service.runtime import scoring
from service.runtime.batching import Predictor
from service.runtime.model import LoadedModel, Prediction
from service.runtime.schema import Features
from service.runtime.scoring import Invocation
from service.settings import Settings

# Reading (and dropping) at most this much of an oversized body lets the client finish sending
# and read the 413, instead of seeing its connection reset mid-upload.
_DRAIN_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class Readiness:
    """What readiness probes answer: the model being served, or what is being loaded and why it
    is not yet."""

    model: LoadedModel | None
    target: str  # models:/<name>@<alias> or models:/<name>/<version>
    attempts: int
    last_error: str | None


@dataclass
class DataPlane:
    """Built once by ``service.app``. Its fields are the app's wiring (tests put a model in its
    store); the dialects call only its verbs."""

    settings: Settings
    store: ModelStore
    metrics: Metrics
    predictor: Predictor
    started_at: datetime

    def ready(self) -> bool:
        """A model is loaded and served."""
        return self.store.current is not None

    def readiness(self) -> Readiness:
        store = self.store
        return Readiness(
            store.current, self.settings.model_uri_description, store.attempts, store.last_error
        )

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether ``name`` (and ``version``, if given) is loaded; ModelNotFound (404) when it is
        not what this server serves (the version is known only once a model is loaded)."""
        self._check_name(name)
        model = self.store.current
        if model is None:
            return False
        self._check_version(model, name, version)
        return True

    def model_info(self, name: str | None = None, version: str | None = None) -> LoadedModel:
        """The model being served: ModelNotLoaded (503) before the first load; when ``name``
        (and ``version``) are given, ModelNotFound (404) unless that is what is served."""
        if name is None:
            return self.store.require()
        self._check_name(name)
        model = self.store.require()
        self._check_version(model, name, version)
        return model

    @property
    def max_rows(self) -> int:
        """The rows a request may carry (SERVE_MAX_ROWS): each dialect checks it as it parses."""
        return self.settings.max_rows

    async def body(self, request: Request) -> bytes:
        return await read_body(request, self.settings.max_body_bytes)

    async def json_body(self, request: Request) -> Any:
        return parse_json(await self.body(request))

    async def infer(self, model: LoadedModel, features: Features, want_proba: bool) -> Prediction:
        """Predict through the micro-batcher and count the answer's labels."""
        result = await self.predictor.predict(model, features, want_proba)
        self.metrics.count_predictions(result.model.info.version, result.labels)
        return result

    async def invoke(self, model: LoadedModel, body: bytes, content_type: str | None) -> Invocation:
        """MLflow's own scoring of ``body`` (``mlflow models serve``'s answer, byte for byte), in
        a worker thread; when it answers 200, the labels the model predicted are counted."""
        answer = await asyncio.to_thread(scoring.invoke, body, content_type, model)
        labels = answer.labels()
        if labels is not None:
            self.metrics.count_predictions(model.info.version, labels)
        return answer

    def metrics_text(self) -> bytes:
        """Every metric in Prometheus' text format."""
        return generate_latest(self.metrics.registry)

    def _check_name(self, name: str) -> None:
        if name != self.settings.model_name:
            raise ModelNotFound(
                f"model {name!r} is not served here (this server serves "
                f"{self.settings.model_name!r})"
            )

    @staticmethod
    def _check_version(model: LoadedModel, name: str, version: str | None) -> None:
        if version is not None and version != model.info.version:
            raise ModelNotFound(
                f"version {version!r} of {name!r} is not served here "
                f"(serving v{model.info.version})"
            )


def plane(request: Request) -> DataPlane:
    dataplane: DataPlane = request.app.state.dataplane
    return dataplane


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
