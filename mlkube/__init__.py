"""mlkube's shared core (:mod:`mlkube.core`), on which every component stands.

``mlkube/__main__.py`` beside it is the ``mlkube`` command, a program that nothing imports."""

import os

__version__ = "0.1.0"

# mlkube never phones home: MLflow 3 sends usage telemetry unless told not to. Every component
# package imports this module before MLflow; MLFLOW_DISABLE_TELEMETRY=false turns it back on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
