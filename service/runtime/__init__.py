"""The inference runtime: the loaded model and the fastest correct way to call it (``model``),
its input signature (``schema``), the compiled forms and their check at load (``compiled``,
``check``), micro-batching (``batching``) and MLflow's own scoring function for what the fast
path does not take (``scoring``). Knows nothing of HTTP, nor of where the model came from
(``service.loader``)."""
