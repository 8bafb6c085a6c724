"""One router per area: health, predict (mlkube's format), invocations (MLflow's), v2 (Open
Inference Protocol), info (model and metrics)."""
