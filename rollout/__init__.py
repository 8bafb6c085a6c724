"""mlkube's rollout operator: rolls serving Deployments when a registry alias moves.

It is a work-queue controller with a periodic resync, as client-go's controllers are, that uses
kopf for its watch of Deployments (and nothing else of kopf: no handlers' state in the objects).
Its layers, from the outside in:

- ``app``: the process: kopf's watch, the poll (a resync), the webhook; all feed ``workqueue``;
- ``reconciler``: one Deployment: read, decide, patch, tag, emit (``kube``, ``registry``);
- ``plan``: the decisions, pure: a Deployment, its pods and the registry in, an action out;
  ``diagnosis`` (why a rollout is not completing), ``patches`` (what the operator writes),
  ``canary`` (the canary's Deployment and verdict); the record is ``mlkube.core.record``.

``python -m rollout`` runs it; ``python -m rollout register-webhook --url ...`` points MLflow's
``model_version_alias.created`` webhook at it.
"""

from mlkube import __version__

__all__ = ["__version__"]
