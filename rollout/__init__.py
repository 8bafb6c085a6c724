"""mlkube's rollout operator: rolls serving Deployments when a registry alias moves.

``python -m rollout`` runs it; ``python -m rollout register-webhook --url ...`` points MLflow's
``model_version_alias.created`` webhook at it. See ``rollout.app`` for how it works.
"""

from mlkube import __version__

__all__ = ["__version__"]
