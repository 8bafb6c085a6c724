"""The HTTP API: one module per dialect (``predict``: mlkube's own, ``mlflow``: as
``mlflow models serve``, ``v2``: the Open Inference Protocol), each parsing its format and
formatting its answer around the data plane (``service.dataplane``) and declaring its error
shape; ``health`` and ``info`` (the model, metrics) beside them. Every route is declared once
(``service.api.endpoints``)."""

from __future__ import annotations

from service.api import health, info, mlflow, predict, v2
from service.api.endpoints import Endpoint
from service.errors import ErrorBody

# Prediction routes first: a request is matched against the routes in this order.
ENDPOINTS: list[Endpoint] = [
    *mlflow.api,
    *predict.api,
    *v2.api,
    *health.api,
    *info.api,
]

# A request no route matches (404) answers in the shape of the dialect whose prefix its path is
# under; mlkube's elsewhere.
UNROUTED_ERRORS: dict[str, ErrorBody] = {v2.PREFIX: v2.error_body}
