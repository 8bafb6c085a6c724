"""MLflow webhook verification and the operator's HTTP endpoint (no Kubernetes, no MLflow)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from mlflow.webhooks.delivery import _generate_hmac_signature

from rollout.metrics import Metrics
from rollout.webhook import AliasChanged, Rejected, build_app, parse_alias_event, sign, verify

SECRET = "s3cret"
PAYLOAD = {
    "entity": "model_version_alias",
    "action": "created",
    "timestamp": "2026-05-01T12:00:00+00:00",
    "data": {"name": "iris-classifier", "alias": "production", "version": "4"},
}


def headers_for(body: bytes, secret: str = SECRET, stamp: float | None = None) -> dict[str, str]:
    delivery = str(uuid.uuid4())
    timestamp = str(int(time.time() if stamp is None else stamp))
    return {
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": sign(secret, delivery, timestamp, body.decode()),
        "Content-Type": "application/json",
    }


def test_signature_is_the_one_mlflow_sends() -> None:
    body = json.dumps(PAYLOAD)
    ours = sign(SECRET, "d-1", "1700000000", body)
    assert ours == _generate_hmac_signature(SECRET, "d-1", "1700000000", body)
    assert ours.startswith("v1,")


def test_verify_accepts_a_fresh_signed_delivery() -> None:
    body = json.dumps(PAYLOAD).encode()
    headers = headers_for(body)
    delivery, sent = verify(SECRET, headers, body)
    assert delivery == headers["X-MLflow-Delivery-Id"]
    assert abs(sent - time.time()) < 5


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, b: ({**h, "X-MLflow-Signature": "v1,AAAA"}, b), "does not match"),
        (lambda h, b: (h, b.replace(b'"4"', b'"5"')), "does not match"),
        (lambda h, b: (headers_for(b, secret="other"), b), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if "Signature" not in k}, b), "missing"),
        (lambda h, b: ({k: v for k, v in h.items() if "Timestamp" not in k}, b), "missing"),
        (lambda h, b: ({k: v for k, v in h.items() if "Delivery" not in k}, b), "missing"),
        (lambda h, b: (headers_for(b, stamp=time.time() - 3600), b), "away from now"),
        (lambda h, b: ({**h, "X-MLflow-Timestamp": "yesterday"}, b), "not a unix timestamp"),
        (lambda h, b: ({**h, "X-MLflow-Signature": h["X-MLflow-Signature"][3:]}, b), "match"),
    ],
    ids=[
        "garbage",
        "tampered",
        "wrong-secret",
        "no-sig",
        "no-ts",
        "no-id",
        "replayed",
        "bad-ts",
        "no-v1",
    ],
)
def test_verify_rejects(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(PAYLOAD).encode()
    headers, body = mutate(headers_for(body), body)
    with pytest.raises(Rejected, match=reason):
        verify(SECRET, headers, body)


def test_verify_accepts_any_of_several_signatures_during_rotation() -> None:
    body = json.dumps(PAYLOAD).encode()
    headers = headers_for(body)
    headers["X-MLflow-Signature"] = "v1,b2xkc2lnbmF0dXJl " + headers["X-MLflow-Signature"]
    verify(SECRET, headers, body)


def test_verify_refuses_everything_without_a_secret() -> None:
    body = json.dumps(PAYLOAD).encode()
    with pytest.raises(Rejected, match="ROLLOUT_WEBHOOK_SECRET"):
        verify("", headers_for(body, secret=""), body)


def test_parse_alias_event() -> None:
    event = parse_alias_event(PAYLOAD, sent=12.0, delivery_id="d")
    assert event == AliasChanged("iris-classifier", "production", "4", 12.0, "d")
    assert parse_alias_event({**PAYLOAD, "entity": "model_version"}) == ("model_version", "created")
    with pytest.raises(ValueError, match="data.version"):
        parse_alias_event({**PAYLOAD, "data": {"name": "m", "alias": "a"}})
    with pytest.raises(ValueError, match="entity"):
        parse_alias_event({"data": {}})


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[TestClient, Metrics, list[AliasChanged]]]:
    received: list[AliasChanged] = []

    async def on_alias(change: AliasChanged) -> int:
        received.append(change)
        return 2

    metrics = Metrics()
    async with TestClient(TestServer(build_app(SECRET, metrics, on_alias))) as client:
        yield client, metrics, received


async def test_endpoint_accepts_signed_alias_event(endpoint) -> None:  # type: ignore[no-untyped-def]
    client, metrics, received = endpoint
    body = json.dumps(PAYLOAD).encode()
    headers = headers_for(body)
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == 202
    assert await response.json() == {"status": "accepted", "deployments": 2}
    assert [(c.model_name, c.alias, c.version) for c in received] == [
        ("iris-classifier", "production", "4")
    ]
    # The same delivery again (MLflow retries, or a replay): acknowledged, not acted upon.
    again = await client.post("/webhook", data=body, headers=headers)
    assert (again.status, (await again.json())["status"]) == (200, "duplicate")
    assert len(received) == 1
    text = await (await client.get("/metrics")).text()
    assert 'mlkube_rollout_webhooks_total{result="accepted"} 1.0' in text


async def test_endpoint_rejects_bad_signature_with_401(endpoint) -> None:  # type: ignore[no-untyped-def]
    client, metrics, received = endpoint
    body = json.dumps(PAYLOAD).encode()
    response = await client.post("/webhook", data=body, headers=headers_for(body, secret="x"))
    assert response.status == 401
    assert "does not match" in (await response.json())["error"]
    response = await client.post("/webhook", data=body)
    assert response.status == 401
    assert received == []
    assert (
        metrics.registry.get_sample_value("mlkube_rollout_webhooks_total", {"result": "rejected"})
        == 2
    )


async def test_endpoint_ignores_other_events_and_names_bad_fields(endpoint) -> None:  # type: ignore[no-untyped-def]
    client, _, received = endpoint
    other = json.dumps({**PAYLOAD, "entity": "registered_model"}).encode()
    response = await client.post("/webhook", data=other, headers=headers_for(other))
    assert (response.status, (await response.json())["status"]) == (200, "ignored")
    bad = json.dumps({**PAYLOAD, "data": {"name": "m"}}).encode()
    response = await client.post("/webhook", data=bad, headers=headers_for(bad))
    assert response.status == 400
    assert "data.alias" in (await response.json())["error"]
    big = b"{" + b" " * (70 * 1024) + b"}"
    response = await client.post("/webhook", data=big, headers=headers_for(big))
    assert response.status == 413
    assert received == []
