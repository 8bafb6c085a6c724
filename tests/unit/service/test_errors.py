"""Each dialect's error shape, from one renderer."""

from __future__ import annotations

import json

import pytest

from service.errors import render


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/predict", {"error": "invalid_input", "message": "bad", "field": "instances[0]"}),
        ("/invocations", {"error_code": "BAD_REQUEST", "message": "bad"}),
        ("/v2/models/iris/infer", {"error": "bad"}),
        ("/v2", {"error": "bad"}),
        ("/v2x", {"error": "invalid_input", "message": "bad", "field": "instances[0]"}),
    ],
)
def test_render(path: str, expected: dict[str, str]) -> None:
    response = render(path, 422, "invalid_input", "BAD_REQUEST", "bad", "instances[0]")
    assert response.status_code == 422
    assert response.media_type == "application/json"
    assert json.loads(bytes(response.body)) == expected
