"""The operator's view of the MLflow model registry: resolve an alias, tag a version.

All of it is the shared :class:`mlkube.core.registry.Registry` (one classification of MLflow's
errors, one backoff window shared by every Deployment the operator follows); this module only
says what the operator reads and writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mlkube.core.registry import Registry as CoreRegistry
from mlkube.core.registry import RegistryError, RegistryRefused, RegistryUnavailable
from rollout.plan import AliasTarget

__all__ = ["Registry", "RegistryError", "RegistryRefused", "RegistryUnavailable"]

log = logging.getLogger(__name__)


class Registry(CoreRegistry):
    def resolve(self, model_name: str, alias: str) -> AliasTarget | None:
        """The version ``alias`` points at and its tags; None when the model or alias
        does not exist. Raises RegistryUnavailable when MLflow does not answer,
        RegistryRefused when it refuses (e.g. 401/403)."""
        version = self.alias_version(model_name, alias)
        if version is None:
            return None
        return AliasTarget(version=str(version.version), tags=dict(version.tags or {}))

    def tag(self, model_name: str, version: str, tags: Mapping[str, str]) -> None:
        """Set ``tags`` on the model version (the verdict keyed by Deployment, its reason)."""
        for key, value in tags.items():
            if not self.set_version_tag(model_name, version, key, value):
                log.warning(
                    "cannot tag model %s version %s: it no longer exists", model_name, version
                )
                return

    def move_alias(self, model_name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (a failed canary's way back, when configured)."""

        def move() -> bool:
            self.client.set_registered_model_alias(model_name, alias, version)
            return True

        self._call(move, f"moving alias {alias} of model {model_name} to version {version}")
