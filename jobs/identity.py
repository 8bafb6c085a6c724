"""What makes a challenger the champion's twin, and the rule that such a twin is not registered.

A run's *identity* is everything its model is a function of: the data (a fingerprint of its
content), the bootstrap seed, the classifier and its effective hyper-parameters, and the code
(see :func:`code_version`). Fitting is deterministic, so two runs with one identity make the same
model: registering the second adds a version that repeats the champion (the bootstrap seed is
the run date, so every same-day ``make train`` or ``make up`` did that, v1 to v8 in half an hour).

The identity is recorded as tags on the run and on the version it registers; a challenger whose
identity equals the champion's is logged (its run is the audit trail) but not registered. A
champion registered before identities were recorded has none, and is never taken as identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlkube import __version__
from mlkube.core.names import TAG_PREFIX

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

IDENTITY_TAG = f"{TAG_PREFIX}.identity"
# A run tag holds at most 8000 characters; parameters longer than this are recorded as a hash.
MAX_PARAMS_CHARS = 2000
# What the training job runs: its own package and the core it stands on (both in the image).
_HERE = Path(__file__).resolve().parent
SOURCE_ROOTS = (_HERE, _HERE.parent / "mlkube" / "core")


@dataclass(frozen=True)
class Identity:
    data: str
    seed: str
    classifier: str
    params: str
    code: str

    def tags(self) -> dict[str, str]:
        return {f"{IDENTITY_TAG}.{name}": value for name, value in asdict(self).items()}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Identity | None:
        """The identity recorded in these tags; None when any part is missing (a version
        registered before identities were recorded, or by hand)."""
        values = {f.name: tags.get(f"{IDENTITY_TAG}.{f.name}") for f in fields(cls)}
        if any(v is None for v in values.values()):
            return None
        return cls(**{k: str(v) for k, v in values.items()})

    def differences(self, other: Identity) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


@dataclass(frozen=True)
class Registration:
    register: bool
    reason: str


def decide_registration(
    challenger: Identity,
    champion_version: str | None,
    champion: Identity | None,
    *,
    force: bool = False,
) -> Registration:
    """Register the challenger unless it is identical to the champion (pure; see the module)."""
    if force:
        return Registration(True, "forced (--force-register)")
    if champion_version is None:
        return Registration(True, "no champion yet")
    if champion is None:
        return Registration(
            True, f"the champion v{champion_version} has no recorded identity to compare with"
        )
    differ = challenger.differences(champion)
    if differ:
        return Registration(
            True, f"differs from the champion v{champion_version} in {', '.join(differ)}"
        )
    return Registration(
        False,
        f"identical to the champion v{champion_version} "
        "(same data, seed, classifier, params and code)",
    )


def data_fingerprint(frame: pd.DataFrame, target: str) -> str:
    """The content of the data as trained on: its label column, column names and types, and
    every value in row order (the bootstrap draws rows by position). Where it came from does not
    count: the same rows from another path or URL are the same data."""
    digest = hashlib.sha256()
    header = [target, [str(c) for c in frame.columns], [str(t) for t in frame.dtypes]]
    digest.update(json.dumps(header).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()[:32]}"


def params_identity(params: Mapping[str, Any]) -> str:
    """The classifier's effective parameters (defaults included, so ``--param C=1.0`` and no
    ``--param`` are the same model), as canonical JSON."""
    text = json.dumps(dict(params), sort_keys=True, default=repr, separators=(",", ":"))
    if len(text) > MAX_PARAMS_CHARS:
        return f"sha256:{hashlib.sha256(text.encode()).hexdigest()[:32]}"
    return text


def source_digest(roots: Iterable[Path]) -> str:
    """A hash of every ``.py`` file under ``roots``, by path relative to its root and content."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def code_version(requirements: Iterable[str], roots: Iterable[Path] = SOURCE_ROOTS) -> str:
    """The code that makes the model: mlkube's version, a hash of the source the training job
    runs (``jobs/`` and ``mlkube/core/``), and the pinned libraries the model is built with.

    Not the git commit: the image has no git and ``GIT_COMMIT`` is optional, a commit that
    touches only docs or the chart does not change the model, and ``git rev-parse HEAD`` misses
    uncommitted edits. Not the image tag either: the Job is not told it, and ``make train`` runs
    no image. The source hash is the same in the image and in a checkout of the same code."""
    pins = ", ".join(sorted(requirements))
    return f"mlkube {__version__}, source {source_digest(roots)}, {pins}"


def champion_identity(client: MlflowClient, mv: ModelVersion) -> Identity | None:
    """The identity recorded on the champion's ModelVersion ``mv``, else on the run that made
    it (a version registered from a run by ``jobs.promote``); None when neither has one."""
    from mlflow.exceptions import MlflowException

    from mlkube.core.registry import classify

    found = Identity.from_tags(mv.tags or {})
    if found is not None or not mv.run_id:
        return found
    try:
        run = client.get_run(mv.run_id)
    except MlflowException as exc:
        if classify(exc) == "not-found":  # the run was deleted: nothing to compare with
            return None
        raise
    return Identity.from_tags(run.data.tags)
