"""Prometheus metrics (one registry per app) and the ASGI middleware that times every request.

The middleware is plain ASGI (no BaseHTTPMiddleware: that costs a task per request) and caches
the labelled children, so timing a request costs a few microseconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.runtime.model import LoadedModel

PREFIX = "mlkube_serve"
UNMATCHED = "<unmatched>"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


# The *_created series double the output and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from request start to the end of the answer, by route, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            f"{PREFIX}_predictions",
            "Rows predicted, by model version and predicted class",
            ["version", "label"],
            registry=r,
        )
        self.model_info = Gauge(
            f"{PREFIX}_model_info",
            "The model being served (value 1), labelled with its version",
            ["name", "version", "alias", "run_id"],
            registry=r,
        )
        self.model_load_seconds = Gauge(
            f"{PREFIX}_model_load_seconds",
            "Seconds the last model load took (resolve, download, unpickle, self-check)",
            registry=r,
        )
        self.model_loaded_timestamp = Gauge(
            f"{PREFIX}_model_loaded_timestamp_seconds",
            "Unix time the served model was loaded",
            registry=r,
        )
        self.model_loads = Counter(
            f"{PREFIX}_model_loads", "Model load attempts, by result", ["result"], registry=r
        )
        self.batch_requests = Histogram(
            f"{PREFIX}_batch_requests",
            "Requests predicted together in one model call",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            f"{PREFIX}_batch_rows",
            "Rows predicted in one model call",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.probes = Counter(
            f"{PREFIX}_probes",
            "Health-check requests (kubelet, make up, load balancers), by "
            "route and status: kept out of the request metrics",
            ["route", "status"],
            registry=r,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._prediction_children: dict[tuple[str, str], Any] = {}

    def observe_request(
        self, route: str, method: str, status: int, seconds: float, *, probe: bool = False
    ) -> None:
        """One answered request; health checks (``probe``: readiness and liveness polls,
        hundreds of 503s while a model loads) go to their own series, not the traffic's."""
        if probe:
            self.probes.labels(route, str(status)).inc()
            return
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (route, method, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

    def count_predictions(self, version: str, labels: np.ndarray[Any, Any]) -> None:
        if len(labels) == 1:
            self._prediction_child(version, labels[0]).inc()
            return
        values, counts = np.unique(labels, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self._prediction_child(version, value).inc(count)

    def _prediction_child(self, version: str, label: Any) -> Any:
        key = (version, str(label))
        child = self._prediction_children.get(key)
        if child is None:
            child = self.predictions.labels(*key)
            self._prediction_children[key] = child
        return child

    def model_loaded(self, model: LoadedModel, previous: LoadedModel | None) -> None:
        if previous is not None:
            self.model_info.remove(*self._info_labels(previous))
        self.model_info.labels(*self._info_labels(model)).set(1)
        self.model_load_seconds.set(model.info.load_seconds)
        self.model_loaded_timestamp.set(model.info.loaded_at.timestamp())
        self.model_loads.labels("success").inc()

    def model_load_failed(self, _message: str) -> None:
        self.model_loads.labels("failure").inc()

    @staticmethod
    def _info_labels(model: LoadedModel) -> Iterable[str]:
        i = model.info
        return (i.name, i.version, i.alias or "", i.run_id or "")


class MetricsMiddleware:
    """Times each HTTP request and counts it by route template (never the raw path: unknown
    paths count as ``<unmatched>``, so scanners cannot blow up the label set)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe_request(
                path,
                scope["method"],
                status,
                time.perf_counter() - start,
                probe=getattr(route, "probe", False),
            )
