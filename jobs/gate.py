"""The champion/challenger gate, shared by the daily job and ``python -m jobs.promote``.

The challenger becomes the alias's version only if it beats the current champion on the same
holdout by more than ``min_improvement`` (ties keep the champion), or if there is no champion."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from jobs.model import improvement, score
from jobs.settings import Metric
from mlkube.core.names import TAG_PREFIX
from mlkube.core.registry import classify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    metric: str
    challenger_score: float
    champion_version: str | None = None
    champion_score: float | None = None
    delta: float | None = None

    def tags(self) -> dict[str, str]:
        """The decision as MLflow tags, for the run and the model version alike."""
        tags = {
            f"{TAG_PREFIX}.decision": "promoted" if self.promote else "not-promoted",
            f"{TAG_PREFIX}.decision_reason": self.reason,
            f"{TAG_PREFIX}.metric": self.metric,
            f"{TAG_PREFIX}.challenger_score": f"{self.challenger_score:.6f}",
        }
        if self.champion_version is not None:
            tags[f"{TAG_PREFIX}.previous_version"] = self.champion_version
        if self.champion_score is not None:
            tags[f"{TAG_PREFIX}.champion_score"] = f"{self.champion_score:.6f}"
        if self.delta is not None:
            tags[f"{TAG_PREFIX}.delta"] = f"{self.delta:+.6f}"
        return tags

    def description(self) -> str:
        """One line for the registry page (the version's description), e.g.
        ``promoted: f1_macro 0.9666 vs 0.9333 (v5), +0.0333``."""
        verdict = "promoted" if self.promote else "not promoted"
        line = f"{verdict}: {self.metric} {self.challenger_score:.4f}"
        if self.champion_score is not None and self.delta is not None:
            line += f" vs {self.champion_score:.4f} (v{self.champion_version}), {self.delta:+.4f}"
        elif self.champion_version is None:
            line += ", no champion yet"
        # A plain win says all in its figures; anything else says why.
        plain_win = self.promote and self.reason.startswith(("challenger wins", "no champion"))
        return line if plain_win else f"{line} ({self.reason})"

    def summary(self) -> str:
        if self.champion_score is None:
            against = "no comparable champion"
        else:
            against = f"champion v{self.champion_version} {self.metric}={self.champion_score:.4f}"
        verdict = "PROMOTED" if self.promote else "not promoted"
        return (
            f"{verdict} ({self.reason}): challenger {self.metric}={self.challenger_score:.4f} "
            f"vs {against}"
        )


def decide(
    metric: Metric,
    challenger: float,
    champion: float | None,
    *,
    champion_version: str | None = None,
    min_improvement: float = 0.0,
    force: bool = False,
    no_promote: bool = False,
    champion_error: str | None = None,
) -> Decision:
    """Pure decision logic; see the module docstring."""
    delta = None if champion is None else improvement(metric, challenger, champion)
    common: dict[str, Any] = {
        "metric": metric,
        "challenger_score": challenger,
        "champion_version": champion_version,
        "champion_score": champion,
        "delta": delta,
    }
    if no_promote:
        return Decision(False, "promotion disabled (--no-promote)", **common)
    if force:
        return Decision(True, "forced (--force-promote)", **common)
    if champion_version is None:
        return Decision(True, "no champion yet", **common)
    if champion is None or delta is None:
        return Decision(
            False,
            f"champion v{champion_version} could not be evaluated ({champion_error}); "
            "use --force-promote to replace it",
            **common,
        )
    if delta > min_improvement:
        return Decision(True, f"challenger wins by {delta:+.4f}", **common)
    if delta == 0:
        return Decision(False, "tie: the champion stays", **common)
    return Decision(
        False, f"challenger does not beat the champion by more than {min_improvement}", **common
    )


def champion_model_version(
    client: MlflowClient, model_name: str, alias: str
) -> ModelVersion | None:
    """The ModelVersion the alias points to (number, tags, run); None only when the model or
    the alias does not exist. Any other error (a refusal, an invalid name) is raised: never
    promote over a champion not read."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if classify(exc) == "not-found":
            return None
        raise


def champion_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The alias's version number (see :func:`champion_model_version`)."""
    champion = champion_model_version(client, model_name, alias)
    return None if champion is None else str(champion.version)


def load_version(model_name: str, version: str) -> Any:
    """The sklearn model behind a version (for probabilities), else its pyfunc."""
    uri = f"models:/{model_name}/{version}"
    try:
        return mlflow.sklearn.load_model(uri)
    except MlflowException:
        return mlflow.pyfunc.load_model(uri)


def score_version(model_name: str, version: str, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    return score(load_version(model_name, version), X, y)


def run_gate(
    client: MlflowClient,
    *,
    model_name: str,
    alias: str,
    version: str,
    run_id: str | None,
    challenger_scores: dict[str, float],
    X_holdout: pd.DataFrame,
    y_holdout: pd.Series,
    metric: Metric,
    min_improvement: float = 0.0,
    force: bool = False,
    no_promote: bool = False,
) -> Decision:
    """Evaluate the champion on the holdout, decide, move the alias, tag run and version."""
    if metric not in challenger_scores:
        raise ValueError(f"--metric {metric}: the challenger has no {metric} (no probabilities?)")
    current = champion_version(client, model_name, alias)
    champion_score: float | None = None
    champion_error: str | None = None
    if current is not None and current != version:
        try:
            champion_score = score_version(model_name, current, X_holdout, y_holdout).get(metric)
            if champion_score is None:
                champion_error = f"it gives no {metric}"
        except Exception as exc:  # any failure to load/predict makes it incomparable
            champion_error = f"{type(exc).__name__}: {exc}"
            log.warning("champion v%s could not be evaluated: %s", current, champion_error)
    decision = decide(
        metric,
        challenger_scores[metric],
        champion_score,
        champion_version=current,
        min_improvement=min_improvement,
        force=force,
        no_promote=no_promote,
        champion_error=champion_error,
    )
    if current == version:
        decision = Decision(
            False, f"v{version} already holds @{alias}", metric, challenger_scores[metric], current
        )
    elif decision.promote and not force:
        # Scoring took seconds: another gate (the CronJob, the promote workflow) may have moved
        # the alias meanwhile. Never overwrite a champion this run did not judge. (The registry
        # has no compare-and-set; this narrows the window to one round trip.)
        latest = champion_version(client, model_name, alias)
        if latest != current:
            decision = replace(
                decision,
                promote=False,
                reason=f"superseded: @{alias} moved to v{latest} during evaluation; "
                "run the gate again",
            )
    for key, value in decision.tags().items():
        client.set_model_version_tag(model_name, version, key, value)
        if run_id:
            client.set_tag(run_id, key, value)
    # The registry page shows each version's description, not its tags: say why there.
    client.update_model_version(model_name, version, description=decision.description())
    if decision.promote:
        client.set_registered_model_alias(model_name, alias, version)
    return decision
