"""The training job against a real MLflow server: logging, registration and the gate."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from jobs.data import IRIS_FEATURES, load_iris_frame
from jobs.identity import Identity
from jobs.promote import main as promote_main
from jobs.train import main as train_main
from mlkube.core.processes import free_port

pytestmark = pytest.mark.integration


def train(model_name: str, *args: str) -> int:
    return train_main(["--model-name", model_name, "--seed", "7", *args])


def alias_version(client: MlflowClient, name: str) -> str:
    return str(client.get_model_version_by_alias(name, "production").version)


def version_tags(client: MlflowClient, name: str, version: str) -> dict[str, str]:
    return dict(client.get_model_version(name, version).tags)


def test_first_run_registers_and_promotes_v1(mlflow_env: str, model_name: str) -> None:
    assert train(model_name, "--trigger", "cron") == 0
    client = MlflowClient(mlflow_env)
    assert alias_version(client, model_name) == "1"

    mv = client.get_model_version(model_name, "1")
    assert mv.tags["mlkube.decision"] == "promoted"
    assert mv.tags["mlkube.decision_reason"] == "no champion yet"
    assert mv.description.startswith("promoted: f1_macro ")  # the registry page says why
    assert mv.description.endswith(", no champion yet")
    run = client.get_run(mv.run_id)
    assert run.data.tags["mlkube.trigger"] == "cron"
    assert run.data.tags["mlkube.bootstrap_seed"] == "7"
    assert run.data.params["bootstrap_seed"] == "7"
    assert run.data.tags["mlkube.decision"] == "promoted"
    assert {"accuracy", "f1_macro", "log_loss"} <= set(run.data.metrics)
    assert run.data.metrics["accuracy"] > 0.8
    contexts = {
        tag.value
        for inp in run.inputs.dataset_inputs
        for tag in inp.tags
        if tag.key == "mlflow.data.context"
    }
    assert contexts == {"training", "holdout"}
    names = {inp.dataset.name for inp in run.inputs.dataset_inputs}
    assert names == {"iris", "iris-holdout"}


def test_registered_model_loads_and_predicts(mlflow_env: str, model_name: str) -> None:
    assert train(model_name) == 0
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@production")
    assert model.metadata.get_input_schema().input_names() == IRIS_FEATURES
    rows = load_iris_frame().iloc[[0, 60, 120]][IRIS_FEATURES]
    assert list(model.predict(rows)) == ["setosa", "versicolor", "virginica"]


def test_weak_challenger_is_registered_but_not_promoted(mlflow_env: str, model_name: str) -> None:
    client = MlflowClient(mlflow_env)
    assert train(model_name) == 0
    assert train(model_name, "--classifier", "dummy") == 0
    assert alias_version(client, model_name) == "1"
    tags = version_tags(client, model_name, "2")
    assert tags["mlkube.decision"] == "not-promoted"
    assert tags["mlkube.previous_version"] == "1"
    assert float(tags["mlkube.challenger_score"]) < float(tags["mlkube.champion_score"])


def test_better_challenger_takes_over(mlflow_env: str, model_name: str) -> None:
    client = MlflowClient(mlflow_env)
    assert train(model_name, "--classifier", "dummy") == 0
    assert train(model_name) == 0
    assert alias_version(client, model_name) == "2"
    tags = version_tags(client, model_name, "2")
    assert tags["mlkube.decision"] == "promoted"
    assert float(tags["mlkube.delta"]) > 0
    description = client.get_model_version(model_name, "2").description
    assert " (v1), +" in description, description


def forget_identity(client: MlflowClient, name: str, version: str, *, run: bool) -> None:
    """What a version registered before identities were recorded looks like (its run too)."""
    mv = client.get_model_version(name, version)
    for key in [k for k in mv.tags if k.startswith("mlkube.identity.")]:
        client.delete_model_version_tag(name, version, key)
        if run:
            client.delete_tag(mv.run_id, key)


def versions(client: MlflowClient, name: str) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))


def runs(client: MlflowClient, name: str) -> list[Any]:
    experiment = client.get_experiment_by_name("mlkube-training")
    assert experiment is not None
    found = client.search_runs(
        [experiment.experiment_id], f"tags.`mlkube.model_name` = '{name}'", order_by=["start_time"]
    )
    return list(found)


def test_a_run_identical_to_the_champion_is_logged_not_registered(
    mlflow_env: str, model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same data, seed, classifier, params and code (a same-day `make train`): one version."""
    client = MlflowClient(mlflow_env)
    assert train(model_name) == 0
    assert train(model_name) == 0
    assert versions(client, model_name) == ["1"]
    assert alias_version(client, model_name) == "1"
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith(
        f"{model_name} skipped: identical to the champion v1 (same data, seed, classifier, "
        "params and code); not registered (--force-register registers it anyway)"
    ), last
    # Both runs are logged, with the same identity; the second says why it registered nothing.
    first, second = runs(client, model_name)
    identity = {k: v for k, v in first.data.tags.items() if k.startswith("mlkube.identity.")}
    assert set(identity) == {f"mlkube.identity.{p}" for p in
                             ("data", "seed", "classifier", "params", "code")}  # fmt: skip
    assert version_tags(client, model_name, "1").items() >= identity.items()
    assert second.data.tags.items() >= identity.items()
    assert second.data.tags["mlkube.decision"] == "skipped"
    assert second.data.tags["mlkube.identical_to"] == "1"
    assert {"accuracy", "f1_macro"} <= set(second.data.metrics)
    assert client.get_model_version(model_name, "1").description.startswith("promoted: ")


def test_a_changed_seed_or_param_registers_a_new_version(mlflow_env: str, model_name: str) -> None:
    client = MlflowClient(mlflow_env)
    assert train(model_name) == 0
    assert train(model_name, "--param", "C=1.0") == 0  # the default, said aloud: the same model
    assert versions(client, model_name) == ["1"]
    assert train_main(["--model-name", model_name, "--seed", "8"]) == 0
    assert train(model_name, "--param", "C=0.5") == 0
    assert versions(client, model_name) == ["1", "2", "3"]
    v2 = client.get_model_version(model_name, "2")
    assert v2.tags["mlkube.identity.seed"] == "8"
    assert v2.description.startswith(("promoted: f1_macro", "not promoted: f1_macro"))
    assert " (v1)" in v2.description, v2.description  # judged against the champion, as before


def test_force_register_registers_an_identical_run_and_the_gate_keeps_the_champion(
    mlflow_env: str, model_name: str
) -> None:
    client = MlflowClient(mlflow_env)
    assert train(model_name) == 0
    assert train(model_name, "--force-register") == 0  # same seed, same data: the same score
    assert alias_version(client, model_name) == "1"
    tags = version_tags(client, model_name, "2")
    assert tags["mlkube.decision_reason"] == "tie: the champion stays"
    assert float(tags["mlkube.delta"]) == 0.0
    assert Identity.from_tags(tags) == Identity.from_tags(version_tags(client, model_name, "1"))


def test_a_champion_from_before_identities_is_never_identical(
    mlflow_env: str, model_name: str
) -> None:
    client = MlflowClient(mlflow_env)
    assert train(model_name) == 0
    forget_identity(client, model_name, "1", run=True)
    assert train(model_name) == 0
    assert versions(client, model_name) == ["1", "2"]
    assert version_tags(client, model_name, "2")["mlkube.decision_reason"] == (
        "tie: the champion stays"
    )


def test_identity_is_read_from_the_run_of_a_version_registered_by_promote(
    mlflow_env: str, model_name: str
) -> None:
    """A training run registered later by `jobs.promote` (no identity tags on its version)."""
    client = MlflowClient(mlflow_env)
    assert train(model_name, "--classifier", "dummy") == 0  # v1, the champion
    assert train(model_name, "--no-promote") == 0  # v2, better but held back
    run_id = client.get_model_version(model_name, "2").run_id
    forget_identity(client, model_name, "2", run=False)
    assert promote_main(["--run-id", run_id, "--model-name", model_name]) == 0
    assert alias_version(client, model_name) == "2"
    assert train(model_name) == 0  # the same run again: identical to v2, read from its run
    assert versions(client, model_name) == ["1", "2"]


def test_margin_no_promote_and_force(mlflow_env: str, model_name: str) -> None:
    client = MlflowClient(mlflow_env)
    assert train(model_name, "--classifier", "dummy") == 0
    assert train(model_name, "--min-improvement", "0.99") == 0  # wins, not by 0.99
    assert train(model_name, "--no-promote") == 0
    assert alias_version(client, model_name) == "1"
    # Another seed: a dummy identical to the champion v1 would not be registered at all.
    assert train(model_name, "--classifier", "dummy", "--seed", "8", "--force-promote") == 0
    assert alias_version(client, model_name) == "4"


def test_csv_data_and_hyperparameters(mlflow_env: str, model_name: str, tmp_path: Path) -> None:
    path = tmp_path / "flowers.csv"
    load_iris_frame().rename(columns={"species": "kind"}).to_csv(path, index=False)
    args = ["--data", str(path), "--target", "kind", "--classifier", "random_forest"]
    assert train(model_name, *args, "--param", "n_estimators=7") == 0
    client = MlflowClient(mlflow_env)
    run = client.get_run(client.get_model_version(model_name, "1").run_id)
    assert run.data.params["clf_n_estimators"] == "7"
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"flowers", "flowers-holdout"}


def test_promote_cli_runs_a_notebook_model_through_the_gate(
    mlflow_env: str, model_name: str, tmp_path: Path
) -> None:
    from sklearn.dummy import DummyClassifier

    client = MlflowClient(mlflow_env)
    assert train(model_name) == 0  # the champion: a real classifier
    frame = load_iris_frame()
    with mlflow.start_run() as run:  # a data scientist's weak experiment
        mlflow.sklearn.log_model(
            DummyClassifier().fit(frame[IRIS_FEATURES], frame["species"]), name="model"
        )
    summary = tmp_path / "summary.md"
    assert promote_main(["--run-id", run.info.run_id, "--model-name", model_name,
                         "--summary-file", str(summary)]) == 0  # fmt: skip
    assert alias_version(client, model_name) == "1"
    assert "not promoted" in summary.read_text()
    assert version_tags(client, model_name, "2")["mlkube.decision"] == "not-promoted"
    # Running the gate again on the same run reuses its version instead of registering again.
    assert promote_main(["--run-id", run.info.run_id, "--model-name", model_name]) == 0
    assert len(client.search_model_versions(f"name='{model_name}'")) == 2


def test_promote_cli_rejects_an_unknown_run(
    mlflow_env: str, model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert promote_main(["--run-id", "0" * 32, "--model-name", model_name]) == 2
    assert f"--run-id {'0' * 32}: no such run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--data", "/nonexistent/x.csv", "--target", "y"],
            "--data /nonexistent/x.csv: no such file",
        ),
        (["--data", "{csv}", "--target", "nope"], "--target nope: no such column"),
        (["--param", "C"], "--param C: expected NAME=VALUE"),
    ],
)
def test_bad_input_exits_2_with_the_message(args: list[str], message: str, tmp_path: Path) -> None:
    csv = tmp_path / "iris.csv"
    load_iris_frame().to_csv(csv, index=False)
    args = [a.replace("{csv}", str(csv)) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.train", *args],
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_unreachable_tracking_server_fails_in_bounded_time() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.train", "--connect-timeout", "3"],
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": uri},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert f"cannot reach the MLflow tracking server at {uri}" in proc.stderr
    assert "start one with `make up`" in proc.stderr  # a local URI: the likely fix
    assert elapsed < 60  # 3 s of backoff plus interpreter start-up


def test_a_mistyped_flag_is_refused_before_mlflow_is_imported() -> None:
    """`--classifer` says "unrecognized arguments" at once: the flags are parsed before MLflow
    and scikit-learn are imported (that took 15 s before)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "jobs.train", "--classifer", "dummy"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "unrecognized arguments: --classifer" in proc.stderr
    imported = re.findall(r"^import time:.*\|\s+(\S+)$", proc.stderr, re.MULTILINE)
    assert "argparse" in imported  # the import log is there...
    assert not [m for m in imported if m.split(".")[0] in ("mlflow", "sklearn", "pandas")]


def test_holdout_is_what_both_models_are_judged_on(mlflow_env: str, model_name: str) -> None:
    """The champion's logged score is exactly its score when re-evaluated as champion."""
    client = MlflowClient(mlflow_env)
    assert train(model_name, "--classifier", "random_forest") == 0
    assert train(model_name, "--classifier", "dummy") == 0
    champion_run = client.get_run(client.get_model_version(model_name, "1").run_id)
    recorded = float(version_tags(client, model_name, "2")["mlkube.champion_score"])
    assert recorded == pytest.approx(champion_run.data.metrics["f1_macro"], abs=1e-6)


def test_gate_never_overwrites_a_champion_it_did_not_judge(
    mlflow_env: str, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another gate moves the alias while this one scores the champion: this one stands down."""
    import jobs.gate

    client = MlflowClient(mlflow_env)
    assert train(model_name, "--classifier", "dummy") == 0  # v1 champion
    # v2, a bystander (identical to v1: registered only because it is forced)
    assert train(model_name, "--classifier", "dummy", "--no-promote", "--force-register") == 0
    real_score = jobs.gate.score_version

    def score_while_someone_promotes(*args, **kwargs):  # type: ignore[no-untyped-def]
        client.set_registered_model_alias(model_name, "production", "2")
        return real_score(*args, **kwargs)

    monkeypatch.setattr(jobs.gate, "score_version", score_while_someone_promotes)
    assert train(model_name) == 0  # v3 beats v1, but v1 is no longer the champion
    assert alias_version(client, model_name) == "2"
    tags = version_tags(client, model_name, "3")
    assert tags["mlkube.decision"] == "not-promoted"
    assert tags["mlkube.decision_reason"].startswith("superseded: @production moved to v2")
