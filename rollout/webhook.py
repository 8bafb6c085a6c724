"""The operator's HTTP endpoint (ROLLOUT_HTTP_PORT): ``POST /webhook``, ``GET /metrics`` and
``GET /healthz/ready`` (503 while the operator cannot read Deployments from the API server).

MLflow (>= 3.3) signs each delivery the Standard Webhooks way::

    X-MLflow-Delivery-Id: <uuid>
    X-MLflow-Timestamp:   <unix seconds>
    X-MLflow-Signature:   v1,<base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))>

and posts ``{"entity": "model_version_alias", "action": "created", "timestamp": ...,
"data": {"name": ..., "alias": ..., "version": ...}}``. A delivery whose signature does not
verify (or is missing, or is older than five minutes: replay) gets 401 and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rollout.metrics import CONTENT_TYPE_LATEST, Metrics

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 64 * 1024
ALIAS_CREATED = ("model_version_alias", "created")


class Rejected(Exception):
    """The delivery is not authentic: answer 401 and do nothing."""


@dataclass(frozen=True)
class AliasChanged:
    model_name: str
    alias: str
    version: str
    timestamp: float  # when MLflow sent it (epoch seconds)
    delivery_id: str


def sign(secret: str, delivery_id: str, timestamp: str, payload: str) -> str:
    """The signature MLflow puts in X-MLflow-Signature (``v1,<base64>``)."""
    digest = hmac.new(
        secret.encode(), f"{delivery_id}.{timestamp}.{payload}".encode(), hashlib.sha256
    ).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> tuple[str, float]:
    """Check a delivery; returns (delivery id, timestamp) or raises Rejected saying why."""
    if not secret:
        raise Rejected("webhooks are disabled: ROLLOUT_WEBHOOK_SECRET is not set")
    delivery_id = headers.get(DELIVERY_ID_HEADER, "")
    stamp = headers.get(TIMESTAMP_HEADER, "")
    signatures = headers.get(SIGNATURE_HEADER, "")
    if not delivery_id or not stamp or not signatures:
        missing = [
            name
            for name, value in (
                (SIGNATURE_HEADER, signatures),
                (TIMESTAMP_HEADER, stamp),
                (DELIVERY_ID_HEADER, delivery_id),
            )
            if not value
        ]
        raise Rejected(f"missing header(s): {', '.join(missing)}")
    try:
        sent = float(stamp)
    except ValueError:
        raise Rejected(f"{TIMESTAMP_HEADER} is not a unix timestamp") from None
    now = time.time() if now is None else now
    if abs(now - sent) > TOLERANCE_SECONDS:
        raise Rejected(f"{TIMESTAMP_HEADER} is more than {TOLERANCE_SECONDS}s away from now")
    try:
        payload = body.decode()
    except UnicodeDecodeError:
        raise Rejected("body is not UTF-8") from None
    expected = sign(secret, delivery_id, stamp, payload).split(",", 1)[1]
    # Standard Webhooks allow several space-separated signatures (secret rotation).
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == SIGNATURE_VERSION and hmac.compare_digest(value.encode(), expected.encode()):
            return delivery_id, sent
    raise Rejected(f"{SIGNATURE_HEADER} does not match the payload")


def parse_alias_event(
    payload: Any, *, sent: float = 0.0, delivery_id: str = ""
) -> tuple[str, str] | AliasChanged:
    """``AliasChanged`` for model_version_alias.created, else (entity, action) to ignore.
    Raises ValueError naming the field when the payload is malformed."""
    if not isinstance(payload, dict):
        raise ValueError("payload must be a JSON object")
    entity, action = payload.get("entity"), payload.get("action")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise ValueError("payload needs string fields 'entity' and 'action'")
    if (entity, action) != ALIAS_CREATED:
        return entity, action
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ValueError("'data' must be an object")
    values = {}
    for field_name in ("name", "alias", "version"):
        value = data.get(field_name)
        if not isinstance(value, str | int) or value == "":
            raise ValueError(f"'data.{field_name}' is missing")
        values[field_name] = str(value)
    return AliasChanged(values["name"], values["alias"], values["version"], sent, delivery_id)


OnAlias = Callable[[AliasChanged], Awaitable[int]]
Readiness = Callable[[], tuple[bool, str]]


def build_app(
    secret: str, metrics: Metrics, on_alias: OnAlias, readiness: Readiness | None = None
) -> web.Application:
    """``on_alias`` schedules the reconciles and returns how many Deployments follow the alias;
    ``readiness`` says whether the operator can see the API server (``GET /healthz/ready``)."""
    seen: OrderedDict[str, None] = OrderedDict()  # recent delivery ids: a replay is a no-op

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            delivery_id, sent = verify(secret, request.headers, body)
        except Rejected as exc:
            metrics.webhooks.labels(result="rejected").inc()
            log.warning("webhook from %s rejected: %s", request.remote, exc)
            return web.json_response({"error": str(exc)}, status=401)
        try:
            event = parse_alias_event(json.loads(body), sent=sent, delivery_id=delivery_id)
        except (ValueError, json.JSONDecodeError) as exc:
            metrics.webhooks.labels(result="rejected").inc()
            return web.json_response({"error": f"invalid payload: {exc}"}, status=400)
        if delivery_id in seen:
            return web.json_response({"status": "duplicate", "delivery_id": delivery_id})
        seen[delivery_id] = None
        while len(seen) > 1000:
            seen.popitem(last=False)
        if not isinstance(event, AliasChanged):
            metrics.webhooks.labels(result="ignored").inc()
            entity, action = event
            return web.json_response({"status": "ignored", "event": f"{entity}.{action}"})
        metrics.webhooks.labels(result="accepted").inc()
        log.info(
            "webhook %s: alias %s of model %s -> version %s",
            delivery_id,
            event.alias,
            event.model_name,
            event.version,
        )
        count = await on_alias(event)
        return web.json_response({"status": "accepted", "deployments": count}, status=202)

    async def metrics_endpoint(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def ready_endpoint(_: web.Request) -> web.Response:
        ok, detail = readiness() if readiness is not None else (True, "ready")
        return web.json_response(
            {"status": "ready" if ok else "not ready", "detail": detail}, status=200 if ok else 503
        )

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/healthz/ready", ready_endpoint)
    return app
