"""The operator's view of the MLflow model registry: resolve an alias, tag a version.

All of it is the shared :class:`mlkube.core.registry.Registry` (one classification of MLflow's
errors, one backoff window shared by every Deployment the operator follows); this module only
says what the operator reads and writes.
"""

from __future__ import annotations

import logging

from mlkube.core.registry import Registry as CoreRegistry
from mlkube.core.registry import RegistryError, RegistryRefused, RegistryUnavailable
from rollout.plan import TAG_ROLLOUT, AliasTarget

__all__ = ["Registry", "RegistryError", "RegistryRefused", "RegistryUnavailable"]

log = logging.getLogger(__name__)


class Registry(CoreRegistry):
    def resolve(self, model_name: str, alias: str) -> AliasTarget | None:
        """The version ``alias`` points at and its rollout tag; None when the model or alias
        does not exist. Raises RegistryUnavailable when MLflow does not answer,
        RegistryRefused when it refuses (e.g. 401/403)."""
        version = self.alias_version(model_name, alias)
        if version is None:
            return None
        tags = dict(version.tags or {})
        return AliasTarget(version=str(version.version), rollout_tag=tags.get(TAG_ROLLOUT))

    def tag(self, model_name: str, version: str, value: str) -> None:
        """Set ``mlkube.rollout=<value>`` on the model version."""
        if not self.set_version_tag(model_name, version, TAG_ROLLOUT, value):
            log.warning("cannot tag model %s version %s: it no longer exists", model_name, version)
