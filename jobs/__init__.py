"""The training job: one run trains, logs, registers and (maybe) promotes a model."""

import mlkube  # noqa: F401  (before MLflow: turns its telemetry off)
