"""MLflow's own scoring function (``mlflow models serve``'s ``/invocations``) on the loaded
pyfunc model, for the requests the fast path leaves to it (CSV, parquet, ``params``, strings...).

Its answer is MLflow's, byte for byte. The prediction MLflow serialized is kept beside it, so
the data plane counts the predictions from the prediction, not by reading the answer back.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
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


# What MLflow's scoring function serialized last, per worker thread (see _record_predictions).
_recorded = threading.local()
_install_lock = threading.Lock()


def _record_predictions(scoring_server: Any) -> None:
    """Wrap MLflow's ``predictions_to_json`` (once) to keep what it serializes: the prediction.
    MLflow's scoring function calls it only once the model has answered. Not a wrapper around
    the model's ``predict``: MLflow's error answers carry the stack trace below its scoring
    function, and a frame of ours there would change the answer's bytes."""
    with _install_lock:
        original = scoring_server.predictions_to_json
        if getattr(original, "records_predictions", False):
            return

        @functools.wraps(original)
        def predictions_to_json(raw_predictions: Any, *args: Any, **kwargs: Any) -> Any:
            _recorded.prediction = raw_predictions
            return original(raw_predictions, *args, **kwargs)

        predictions_to_json.records_predictions = True  # type: ignore[attr-defined]
        scoring_server.predictions_to_json = predictions_to_json


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
    _record_predictions(scoring_server)
    _recorded.prediction = None
    try:
        result = scoring_server.invocations(body, content_type, model.pyfunc, model.input_schema)
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
    prediction, _recorded.prediction = _recorded.prediction, None
    return Invocation(
        result.status,
        result.response,
        result.mimetype,
        prediction if result.status == 200 else None,
    )
