"""``/invocations`` answers exactly as a real ``mlflow models serve`` on the same model: same
status, content type and body bytes, for good requests and bad ones, for each family the
training job trains and the benchmark serves (logistic regression as numpy, random forest and
histogram gradient boosting through Treelite)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlkube.core.processes import free_port, stop_process_group
from tests.conftest import subprocess_env
from tests.integration.service.conftest import FEATURES, RegisteredModel, ServiceProcess, train
from tests.timeouts import HTTP_S, PROCESS_START_S

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.8, 5.1, 1.5]]
RECORDS = [dict(zip(FEATURES, r, strict=True)) for r in ROWS]
COLUMNS = {name: [r[i] for r in ROWS] for i, name in enumerate(FEATURES)}
PERMUTED = FEATURES[::-1]
JSON = "application/json"


def dumps(payload: object) -> bytes:
    return json.dumps(payload).encode()


# Rows across and beyond Iris's range, one decimal like the data (so many fall on a split
# threshold of the trees, which sit halfway between such values) and not: where a compiled form
# that rounds differently would answer another label.
_rng = random.Random(7)
SPREAD = [[round(_rng.uniform(0.0, 8.0), _rng.choice([1, 1, 2, 6])) for _ in FEATURES]
          for _ in range(2000)]  # fmt: skip

CSV = (",".join(FEATURES) + "\n" + "\n".join(",".join(map(str, r)) for r in ROWS) + "\n").encode()

# (name, body, content type)
CASES = [
    ("dataframe_split", dumps({"dataframe_split": {"columns": FEATURES, "data": ROWS}}), JSON),
    ("dataframe_split, permuted columns", dumps({"dataframe_split": {
        "columns": PERMUTED, "data": [r[::-1] for r in ROWS]}}), JSON),
    ("dataframe_split, integers", dumps({"dataframe_split": {"columns": FEATURES,
                                                             "data": [[5, 3, 1, 0]]}}), JSON),
    ("dataframe_records", dumps({"dataframe_records": RECORDS}), JSON),
    ("instances, records", dumps({"instances": RECORDS}), JSON),
    ("instances, columns", dumps({"instances": COLUMNS}), JSON),
    ("inputs, records", dumps({"inputs": RECORDS}), JSON),
    ("inputs, columns", dumps({"inputs": COLUMNS}), JSON),
    ("1,000 rows", dumps({"dataframe_split": {"columns": FEATURES, "data": ROWS * 250}}), JSON),
    ("2,000 rows across the range", dumps({"dataframe_split": {"columns": FEATURES,
                                                               "data": SPREAD}}), JSON),
    ("at split thresholds", dumps({"dataframe_split": {"columns": FEATURES, "data": [
        [2.45, 3.0, 2.45, 0.8], [5.45, 2.8, 4.75, 1.75], [6.15, 3.05, 4.85, 1.65],
        [5.75, 2.25, 4.95, 1.55], [float.fromhex("0x1.3333333333333p+2"), 3.0, 4.9, 1.7]]}}),
     JSON),
    ("charset", dumps({"dataframe_records": RECORDS}), "application/json; charset=utf-8"),
    ("csv", CSV, "text/csv"),
    # MLflow's own answers to odd or bad requests
    ("extra column, ignored", dumps({"dataframe_records": [{**RECORDS[0], "x": 1}]}), JSON),
    ("numeric strings, converted", dumps({"dataframe_split": {"columns": FEATURES,
                                          "data": [["5.1", "3.5", "1.4", "0.2"]]}}), JSON),
    ("inputs as lists", dumps({"inputs": ROWS}), JSON),
    ("missing column", dumps({"dataframe_split": {"columns": FEATURES[:3],
                                                  "data": [r[:3] for r in ROWS]}}), JSON),
    ("strings", dumps({"dataframe_split": {"columns": FEATURES,
                                           "data": [[5.1, "wide", 1.4, 0.2]]}}), JSON),
    ("null", dumps({"dataframe_split": {"columns": FEATURES, "data": [[5.1, None, 1.4, 0.2]]}}),
     JSON),
    ("NaN", b'{"dataframe_split": {"columns": ' + dumps(FEATURES)
     + b', "data": [[NaN, 3.5, 1.4, 0.2]]}}', JSON),
    ("no rows", dumps({"dataframe_split": {"columns": FEATURES, "data": []}}), JSON),
    ("two formats", dumps({"inputs": RECORDS, "instances": RECORDS}), JSON),
    ("no format", dumps({"rows": ROWS}), JSON),
    ("a list", dumps(ROWS), JSON),
    ("bad JSON", b'{"inputs": [', JSON),
    ("empty body", b"", JSON),
    ("bad CSV", b"a,b\n1,2\n", "text/csv"),
    ("unsupported type", dumps({"inputs": RECORDS}), "text/plain"),
    ("unsupported charset", dumps({"inputs": RECORDS}), "application/json; charset=latin-1"),
    ("unknown parameter", dumps({"inputs": RECORDS}), "application/json; format=pandas-split"),
]  # fmt: skip


FAMILIES = ["logistic_regression", "random_forest", "hist_gradient_boosting"]
PATHS = {"logistic_regression": "numpy-linear", "random_forest": "treelite",
         "hist_gradient_boosting": "treelite"}  # fmt: skip


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def model_of_family(registered_model: RegisteredModel, family: str) -> RegisteredModel:
    """The session's logistic regression, or the same training job with another classifier."""
    if family == "logistic_regression":
        return registered_model
    name = f"parity-{family}-{uuid.uuid4().hex[:6]}"
    uri = registered_model.tracking_uri
    return RegisteredModel(uri, name, train(uri, name, "--classifier", family))


@pytest.fixture(scope="module")
def ours(
    model_of_family: RegisteredModel, family: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    with ServiceProcess(
        tmp_path_factory.mktemp("parity") / "service.log",
        MLFLOW_TRACKING_URI=model_of_family.tracking_uri,
        MODEL_NAME=model_of_family.name,
    ) as service:
        service.wait("/healthz/ready")
        yield service


@pytest.fixture(scope="module")
def mlflow_serve(
    model_of_family: RegisteredModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    registered_model = model_of_family
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    uri = f"models:/{registered_model.name}/{registered_model.version}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager",
             "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            env=subprocess_env(
                MLFLOW_TRACKING_URI=registered_model.tracking_uri, PYTHONHASHSEED="0",
                # MLflow execs `uvicorn` from PATH: the one of this interpreter's environment
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            ),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PROCESS_START_S
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve did not start:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/ping", timeout=HTTP_S).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(proc)


@pytest.mark.parametrize(
    ("body", "content_type"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_same_answer_as_mlflow_models_serve(
    ours: ServiceProcess, mlflow_serve: str, body: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type}
    theirs = httpx.post(
        mlflow_serve + "/invocations", content=body, headers=headers, timeout=HTTP_S
    )
    answer = httpx.post(ours.url + "/invocations", content=body, headers=headers, timeout=HTTP_S)
    assert answer.status_code == theirs.status_code, answer.text
    assert answer.headers["content-type"] == theirs.headers["content-type"]
    assert answer.content == theirs.content


def test_each_family_is_served_by_its_compiled_form(ours: ServiceProcess, family: str) -> None:
    """The parity above is the compiled form's, not scikit-learn's: the family's compiled path
    passed its check at load (holdout rows included: the training job stored them)."""
    serving = httpx.get(ours.url + "/model", timeout=HTTP_S).json()["serving"]
    assert serving["path"] == PATHS[family], serving
    assert "holdout" in serving["reason"]
