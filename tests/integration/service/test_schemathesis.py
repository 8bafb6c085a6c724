"""Property-based requests generated from the app's own OpenAPI, sent to the real server: no
5xx, whatever the input."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.app import create_app
from service.settings import Settings
from tests.integration.service.conftest import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The same document the server publishes at /openapi.json (building the app loads no model).
# Loaded from the app rather than the URL: schemathesis' lazy fixture loader does not work with
# this pytest version.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case[Any], served: ServiceProcess) -> None:
    response = case.call(base_url=served.url, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    content_type = {k.lower(): v for k, v in response.headers.items()}["content-type"]
    assert content_type[0].startswith(("application/json", "text/")), content_type
