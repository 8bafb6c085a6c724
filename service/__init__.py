"""mlkube's model server: FastAPI on uvicorn, serving the registered model that the alias points to.

Three dialects on one port: mlkube's own ``/predict``, MLflow's ``/invocations`` (byte-compatible
with ``mlflow models serve``) and the Open Inference Protocol v2 (``/v2/...``). Run it with
``python -m service``; every knob is an env var (see :class:`service.settings.Settings`)."""

from mlkube import __version__  # before MLflow: turns its telemetry off

__all__ = ["__version__"]
