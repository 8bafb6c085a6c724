"""MLflow's own scoring function (``mlflow models serve``'s ``/invocations``) on the loaded
pyfunc model, for the requests the fast path leaves to it (CSV, parquet, ``params``, strings...).

Its answer is MLflow's, byte for byte. What the model's ``predict`` returned is kept beside it,
so the data plane counts the predictions from the prediction, not by reading the answer back.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.runtime.model import Array, LoadedModel

log = logging.getLogger(__name__)

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
# As MLflow lists them in its 415 message.
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET]


@dataclass(frozen=True)
class Invocation:
    """MLflow's answer (status, body, media type) and, when it answered 200, what the model
    predicted."""

    status: int
    content: str | bytes
    media_type: str
    prediction: Any = None

    def labels(self) -> Array | None:
        """The predicted labels to count: the prediction when MLflow answers it as a list of
        values (an array, a list); None for a table (a DataFrame or a Series is answered as
        records) or a mapping, as for an answer that is not a 200."""
        prediction = self.prediction
        if isinstance(prediction, np.ndarray):
            values = prediction.tolist()
        elif isinstance(prediction, list | tuple):
            # numpy scalars as MLflow's JSON encoder writes them
            values = [v.item() if isinstance(v, np.generic) else v for v in prediction]
        else:
            return None
        if not values or isinstance(values[0], dict):
            return None
        return np.asarray(values, dtype=object)


class _Recording:
    """The pyfunc model as MLflow's scoring function sees it, keeping what ``predict``
    returned. ``predict`` keeps the model's signature: MLflow passes ``params`` only when the
    model's ``predict`` takes them."""

    def __init__(self, pyfunc: Any) -> None:
        self._pyfunc = pyfunc
        self.prediction: Any = None
        original = pyfunc.predict

        @functools.wraps(original)
        def predict(*args: Any, **kwargs: Any) -> Any:
            self.prediction = original(*args, **kwargs)
            return self.prediction

        self.predict = predict

    def __getattr__(self, name: str) -> Any:  # metadata and anything else MLflow reads
        return getattr(self._pyfunc, name)


def invoke(body: bytes, content_type: str | None, model: LoadedModel) -> Invocation:
    """MLflow's own ``/invocations`` logic on the loaded model. Runs in a worker thread (pandas
    parsing and schema enforcement are slow)."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server as _scoring_server

    scoring_server: Any = _scoring_server  # untyped module

    if content_type is None:  # MLflow crashes (500) on this; answer its own 415
        return Invocation(
            415,
            "This predictor only supports the following content types: "
            f"Types: {CONTENT_TYPES}. Got 'None'.",
            "text/plain",
        )
    recording = _Recording(model.pyfunc)
    try:
        result = scoring_server.invocations(body, content_type, recording, model.input_schema)
    except MlflowException as exc:
        error: Any = exc
        return Invocation(
            error.get_http_status_code(), error.serialize_as_json(), CONTENT_TYPE_JSON
        )
    except Exception as exc:  # MLflow would answer 500; it is the request's fault
        log.info("invocations: MLflow's parser failed on the request: %r", exc)
        message = f"Invalid request: {type(exc).__name__}: {exc}"
        return Invocation(
            400,
            json.dumps({"error_code": "BAD_REQUEST", "message": message}),
            "application/json",
        )
    prediction = recording.prediction if result.status == 200 else None
    return Invocation(result.status, result.response, result.mimetype, prediction)
