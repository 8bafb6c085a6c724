"""A run's identity and the rule that a challenger identical to the champion is not registered,
without MLflow (the champion's tags are read through a fake client)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST

from jobs.data import IRIS_SOURCE, IRIS_TARGET, Dataset, load_dataset, load_iris_frame, validate
from jobs.identity import (
    Identity,
    champion_identity,
    code_version,
    data_fingerprint,
    decide_registration,
    params_identity,
    source_digest,
)
from jobs.model import build_pipeline
from jobs.train import build_parser

CHAMPION = Identity(
    data="sha256:aa",
    seed="20261122",
    classifier="logistic_regression",
    params='{"C":1.0}',
    code="mlkube 0.1.0, source 0123, scikit-learn==1.9.1",
)


def test_an_identical_challenger_is_not_registered() -> None:
    r = decide_registration(replace(CHAMPION), "3", CHAMPION)
    assert not r.register
    assert r.reason == (
        "identical to the champion v3 (same data, seed, classifier, params and code)"
    )


@pytest.mark.parametrize("part", ["data", "seed", "classifier", "params", "code"])
def test_any_difference_registers_and_says_which(part: str) -> None:
    challenger = replace(CHAMPION, **{part: "something else"})
    r = decide_registration(challenger, "3", CHAMPION)
    assert r.register
    assert r.reason == f"differs from the champion v3 in {part}"


def test_no_champion_or_one_without_an_identity_registers() -> None:
    assert decide_registration(CHAMPION, None, None).reason == "no champion yet"
    r = decide_registration(CHAMPION, "2", None)  # registered before identities were recorded
    assert r.register
    assert r.reason == "the champion v2 has no recorded identity to compare with"


def test_force_registers_an_identical_challenger() -> None:
    r = decide_registration(CHAMPION, "3", CHAMPION, force=True)
    assert r.register
    assert r.reason == "forced (--force-register)"


def test_tags_round_trip_and_a_missing_part_is_no_identity() -> None:
    tags = {**CHAMPION.tags(), "mlkube.decision": "promoted"}
    assert tags["mlkube.identity.seed"] == "20261122"
    assert Identity.from_tags(tags) == CHAMPION
    del tags["mlkube.identity.code"]
    assert Identity.from_tags(tags) is None
    assert Identity.from_tags({}) is None


def iris() -> Dataset:
    return load_dataset(None, None)


def test_the_data_fingerprint_is_the_content() -> None:
    first = iris()
    assert data_fingerprint(first.frame, first.target) == data_fingerprint(
        iris().frame, IRIS_TARGET
    )
    changed = first.frame.copy()
    changed.iloc[0, 0] += 0.1
    reordered = first.frame.iloc[::-1].reset_index(drop=True)
    renamed = first.frame.rename(columns={IRIS_TARGET: "kind"})
    fingerprints = {
        data_fingerprint(first.frame, first.target),
        data_fingerprint(changed, first.target),
        data_fingerprint(reordered, first.target),
        data_fingerprint(renamed, "kind"),
    }
    assert len(fingerprints) == 4


def test_the_same_rows_from_another_source_are_the_same_data(tmp_path: Path) -> None:
    path = tmp_path / "flowers.csv"
    load_iris_frame().to_csv(path, index=False)
    from_file = load_dataset(str(path), IRIS_TARGET)
    built_in = validate(Dataset(load_iris_frame(), IRIS_TARGET, IRIS_SOURCE, "iris"))
    assert data_fingerprint(from_file.frame, IRIS_TARGET) == data_fingerprint(
        built_in.frame, IRIS_TARGET
    )


def effective(kind: Any, params: dict[str, Any], seed: int = 1) -> str:
    classifier = build_pipeline(kind, params, seed).named_steps["classify"]
    return params_identity(classifier.get_params(deep=False))


def test_params_are_the_effective_ones() -> None:
    assert effective("logistic_regression", {}) == effective("logistic_regression", {"C": 1.0})
    assert effective("logistic_regression", {}) != effective("logistic_regression", {"C": 0.5})
    assert '"max_iter":1000' in effective("logistic_regression", {})
    # A seeded estimator carries its seed; the identity has it twice, which is harmless.
    assert effective("random_forest", {}, seed=1) != effective("random_forest", {}, seed=2)
    assert params_identity({"b": 1, "a": 2}) == params_identity({"a": 2, "b": 1})
    long = params_identity({"name": "x" * 5000})
    assert long.startswith("sha256:")
    assert len(long) < 100


def test_the_code_version_follows_the_source_and_the_pins(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    root.mkdir()
    (root / "train.py").write_text("SEED = 1\n")
    before = source_digest([root])
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0compiled")
    (root / "notes.txt").write_text("not code")
    assert source_digest([root]) == before  # only the .py files count
    (root / "train.py").write_text("SEED = 2\n")
    assert source_digest([root]) != before

    pins = ["scikit-learn==1.9.1", "numpy==2.4.6"]
    code = code_version(pins, [root])
    assert code.startswith("mlkube ")
    assert code.endswith("numpy==2.4.6, scikit-learn==1.9.1")
    assert code_version(["scikit-learn==1.9.2", "numpy==2.4.6"], [root]) != code


def test_the_real_code_version_hashes_the_jobs_and_the_core() -> None:
    from jobs import identity

    jobs_root, core_root = identity.SOURCE_ROOTS
    assert (jobs_root / "train.py").is_file()
    assert (core_root.parent.name, core_root.name) == ("mlkube", "core")
    assert (core_root / "names.py").is_file()


class FakeClient:
    """The read ``champion_identity`` may make beyond the champion's version: its run's tags."""

    def __init__(self, run_tags: dict[str, str] | None) -> None:
        self.run_tags = run_tags

    def get_run(self, run_id: str) -> Any:
        if self.run_tags is None:
            raise MlflowException("run r1 not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return SimpleNamespace(data=SimpleNamespace(tags=self.run_tags))


def test_the_champions_identity_is_read_from_its_version_else_its_run() -> None:
    def read(version_tags: dict[str, str], run_tags: dict[str, str] | None) -> Identity | None:
        client: Any = FakeClient(run_tags)
        return champion_identity(client, SimpleNamespace(tags=version_tags, run_id="r1"))

    assert read(CHAMPION.tags(), None) == CHAMPION
    assert read({}, CHAMPION.tags()) == CHAMPION  # registered from a run by `jobs.promote`
    assert read({}, {"mlkube.trigger": "cron"}) is None  # from before identities were recorded
    assert read({}, None) is None  # its run was deleted


def test_a_refused_run_read_is_not_taken_for_no_identity() -> None:
    class Refusing(FakeClient):
        def get_run(self, run_id: str) -> Any:
            raise MlflowException("forbidden", error_code=PERMISSION_DENIED)

    client: Any = Refusing({})
    with pytest.raises(MlflowException):
        champion_identity(client, SimpleNamespace(tags={}, run_id="r1"))


def test_force_register_flag() -> None:
    assert build_parser().parse_args(["--force-register"]).force_register
    assert not build_parser().parse_args([]).force_register
