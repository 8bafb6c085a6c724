"""The local runner: the platform on one machine, no Kubernetes.

- :mod:`embedded.up`: ``mlkube up`` (``make up``): MLflow, one training run and the model server;
- :mod:`embedded.mlflow_server`: the MLflow tracking server as a child process (one uvicorn
  worker), which ``make up``, the integration tests and the benchmarks share.

It stands on :mod:`mlkube.core` and imports no other component: it starts ``python -m jobs.train``
and ``python -m service`` as processes."""

import mlkube  # noqa: F401  (before MLflow: turns its telemetry off)
