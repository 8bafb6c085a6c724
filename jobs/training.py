"""One training run: data -> bootstrap -> fit -> holdout metrics -> log -> register -> gate.
The command line is :mod:`jobs.train`, which parses its flags before importing this module (and
with it MLflow and scikit-learn, seconds): a mistyped flag is answered at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import infer_signature

from jobs.cli import git_commit
from jobs.data import IRIS_SOURCE, Dataset, bootstrap, holdout_split, load_dataset
from jobs.gate import Decision, champion_model_version, run_gate
from jobs.identity import (
    Identity,
    Registration,
    champion_identity,
    code_version,
    data_fingerprint,
    decide_registration,
    params_identity,
)
from jobs.model import build_pipeline, score
from jobs.settings import TrainSettings
from mlkube.core.check_rows import check_metadata
from mlkube.core.names import TAG_PREFIX
from mlkube.core.tracking import wait_for_tracking_server

log = logging.getLogger("jobs.train")


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    version: str | None  # None: not registered (identical to the champion)
    scores: dict[str, float]
    decision: Decision | None  # the gate's; None when nothing was registered
    seed: int
    registration: Registration


def seed_for(now: datetime) -> int:
    """The run date as YYYYMMDD: a different bootstrap sample each day, reproducible."""
    return int(now.strftime("%Y%m%d"))


def train(
    settings: TrainSettings,
    *,
    params: dict[str, Any] | None = None,
    promote: bool = True,
    force_promote: bool = False,
    force_register: bool = False,
    now: datetime | None = None,
) -> TrainResult:
    """The whole run. Raises DataError/ValueError on bad input, Unreachable when MLflow is down.
    A challenger identical to the champion (:mod:`jobs.identity`) is logged, not registered,
    unless ``force_register``."""
    dataset = load_dataset(settings.data, settings.target)
    seed = settings.seed if settings.seed is not None else seed_for(now or datetime.now(UTC))
    pipeline = build_pipeline(settings.classifier, params or {}, seed)
    requirements = model_requirements()
    identity = Identity(
        data=data_fingerprint(dataset.frame, dataset.target),
        seed=str(seed),
        classifier=settings.classifier,
        params=params_identity(pipeline.named_steps["classify"].get_params(deep=False)),
        code=code_version(requirements),
    )
    log.info(
        "data %s: %d rows, %d features, %d classes; bootstrap seed %d",
        dataset.source,
        len(dataset.frame),
        len(dataset.features),
        dataset.y.nunique(),
        seed,
    )

    wait_for_tracking_server(settings.tracking_uri, timeout=settings.connect_timeout)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(settings.experiment)
    client = MlflowClient(settings.tracking_uri)

    split = holdout_split(dataset)
    X_boot, y_boot = bootstrap(split.X_train, split.y_train, seed)
    with mlflow.start_run(tags={**_run_tags(settings, seed), **identity.tags()}) as run:
        _log_lineage(dataset, split.X_holdout.index)
        pipeline.fit(X_boot, y_boot)
        scores = score(pipeline, split.X_holdout, split.y_holdout)
        mlflow.log_params(
            {
                "classifier": settings.classifier,
                "bootstrap_seed": seed,
                "train_rows": len(X_boot),
                "holdout_rows": len(split.X_holdout),
                "metric": settings.metric,
                "min_improvement": settings.min_improvement,
                **{f"clf_{k}": v for k, v in (params or {}).items()},
            }
        )
        mlflow.log_metrics(scores)
        log.info("holdout: %s", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
        champion_mv = champion_model_version(client, settings.model_name, settings.model_alias)
        current = None if champion_mv is None else str(champion_mv.version)
        champion = None
        if champion_mv is not None and not force_register:
            champion = champion_identity(client, champion_mv)
        registration = decide_registration(identity, current, champion, force=force_register)
        if not registration.register:
            # The run (params, metrics, lineage, identity) is the audit trail; the model is not
            # logged again: the champion's version already holds this very model.
            mlflow.set_tags(
                {
                    f"{TAG_PREFIX}.decision": "skipped",
                    f"{TAG_PREFIX}.decision_reason": registration.reason,
                    f"{TAG_PREFIX}.identical_to": str(current),
                }
            )
            log.info("%s: skipped: %s", settings.model_name, registration.reason)
            return TrainResult(run.info.run_id, None, scores, None, seed, registration)
        log.info("registering: %s", registration.reason)
        example = split.X_holdout.head(3)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(example, pipeline.predict(example)),
            input_example=example,
            registered_model_name=settings.model_name,
            # Explicit requirements: MLflow's inference imports the model in a subprocess and
            # costs ~30 s a run; these are exactly what the pipeline needs to load.
            pip_requirements=requirements,
            skops_trusted_types=trusted_types(pipeline),
            # The holdout rows and the training range, with the version: the model server
            # checks its compiled form of the model against scikit-learn on them.
            metadata=check_metadata(
                split.X_holdout.to_numpy().tolist(),
                split.X_train.min().tolist(),
                split.X_train.max().tolist(),
            ),
        )
        version = str(info.registered_model_version)
        log.info("registered %s v%s", settings.model_name, version)
        # Before the gate can make it the champion: the next run compares itself with these.
        for key, value in identity.tags().items():
            client.set_model_version_tag(settings.model_name, version, key, value)
        decision = run_gate(
            client,
            model_name=settings.model_name,
            alias=settings.model_alias,
            version=version,
            run_id=run.info.run_id,
            challenger_scores=scores,
            X_holdout=split.X_holdout,
            y_holdout=split.y_holdout,
            metric=settings.metric,
            min_improvement=settings.min_improvement,
            force=force_promote,
            no_promote=not promote,
        )
    log.info("%s v%s: %s", settings.model_name, version, decision.summary())
    return TrainResult(run.info.run_id, version, scores, decision, seed, registration)


def model_requirements() -> list[str]:
    from importlib.metadata import version

    packages = ("mlflow-skinny", "scikit-learn", "numpy", "pandas", "scipy", "skops")
    return [f"{name}=={version(name)}" for name in packages]


def trusted_types(pipeline: Any) -> list[str] | None:
    """Types skops refuses to load without being told (e.g. a random forest's trees). We built
    this model in this very process, so it is trusted by construction; naming the types lets the
    server load it without falling back to pickle."""
    from skops.io import dumps, get_untrusted_types

    return list(get_untrusted_types(data=dumps(pipeline))) or None


def _run_tags(settings: TrainSettings, seed: int) -> dict[str, str]:
    tags = {
        f"{TAG_PREFIX}.trigger": settings.trigger,
        f"{TAG_PREFIX}.bootstrap_seed": str(seed),
        f"{TAG_PREFIX}.model_name": settings.model_name,
    }
    commit = git_commit(settings)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def _dataset_source(source: str) -> Any:
    """An explicit MLflow dataset source, so lineage records what the data really is."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import get_registered_sources
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    if source == IRIS_SOURCE:
        return CodeDatasetSource(tags={"mlflow.source.name": IRIS_SOURCE})
    if source.startswith(("http://", "https://")):
        return HTTPDatasetSource(url=source)  # type: ignore[no-untyped-call]
    if "://" in source:
        return source  # s3://, gs://...: MLflow resolves these itself
    # The local-file source class is generated at import time (and registered twice, so passing
    # a bare path makes MLflow warn that it is ambiguous): take it from the registry.
    sources: list[Any] = get_registered_sources()
    local = next(s for s in sources if s.__name__ == "LocalArtifactDatasetSource")
    return local(str(Path(source).resolve()))


def _log_lineage(dataset: Dataset, holdout_index: Any) -> None:
    """Dataset lineage: the full source, and the holdout rows every run is judged on."""
    source = _dataset_source(dataset.source)
    full = from_pandas(dataset.frame, source=source, targets=dataset.target, name=dataset.name)
    mlflow.log_input(full, context="training")
    holdout = from_pandas(
        dataset.frame.loc[holdout_index],
        source=source,
        targets=dataset.target,
        name=f"{dataset.name}-holdout",
    )
    mlflow.log_input(holdout, context="holdout")
