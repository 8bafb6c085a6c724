"""`make up`'s MLflow is one process: uvicorn with MLflow's app, set up as `mlflow server` sets
up the worker it spawns, so MLflow is imported once, not once per process."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from embedded.mlflow_server import DEFAULT_ARTIFACT_ROOT, MlflowServer, server_environment


def mlflow_server_constants() -> dict[str, str]:
    """mlflow/server/constants.py read on its own: importing mlflow.server builds its app."""
    spec = importlib.util.find_spec("mlflow")
    assert spec is not None
    assert spec.origin is not None
    path = Path(spec.origin).parent / "server" / "constants.py"
    names: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), names)  # noqa: S102 - MLflow's own file
    return {k: v for k, v in names.items() if k.endswith("_ENV_VAR") and isinstance(v, str)}


def test_make_up_runs_mlflow_as_one_process_not_the_two_of_its_cli(tmp_path: Path) -> None:
    command = MlflowServer(state_dir=tmp_path, port=5000).command()
    assert command[1:3] == ["-m", "embedded.mlflow_server"]
    assert "server" not in command  # not `python -m mlflow server`, whose CLI spawns uvicorn


def test_the_worker_environment_uses_mlflows_own_names(tmp_path: Path) -> None:
    """The names are MLflow's private contract between its CLI and its worker: an MLflow
    upgrade that renames one fails here, not as a server that ignores its sqlite."""
    import mlflow.environment_variables as ev
    from mlflow.store.tracking import DEFAULT_ARTIFACTS_URI
    from mlflow.utils.server_cli_utils import resolve_default_artifact_root

    constants = mlflow_server_constants()
    env = server_environment("sqlite:///x.db", tmp_path / "artifacts")
    assert env[constants["BACKEND_STORE_URI_ENV_VAR"]] == "sqlite:///x.db"
    assert env[constants["REGISTRY_STORE_URI_ENV_VAR"]] == "sqlite:///x.db"
    assert env[constants["SERVE_ARTIFACTS_ENV_VAR"]] == "true"
    assert env[constants["ARTIFACTS_DESTINATION_ENV_VAR"]] == str(tmp_path / "artifacts")
    root = env[constants["ARTIFACT_ROOT_ENV_VAR"]]
    assert root == DEFAULT_ARTIFACT_ROOT == DEFAULT_ARTIFACTS_URI
    assert root == resolve_default_artifact_root(True, "", "sqlite:///x.db")
    assert env[ev._MLFLOW_SGI_NAME.name] == "uvicorn"
    assert env[ev._MLFLOW_IN_JOB_EXECUTOR.name] == "false"
    assert env[ev.MLFLOW_ENABLE_WORKSPACES.name] == "false"
    assert env[ev._MLFLOW_SERVER_BOOT_ID.name]
    assert set(env) <= set(constants.values()) | {
        ev._MLFLOW_SGI_NAME.name, ev._MLFLOW_IN_JOB_EXECUTOR.name,
        ev.MLFLOW_ENABLE_WORKSPACES.name, ev._MLFLOW_SERVER_BOOT_ID.name,
    }  # fmt: skip


def test_the_job_runner_or_asking_for_it_gets_mlflows_cli(tmp_path: Path) -> None:
    """Only `mlflow server` starts MLflow's job runner: a caller that turns it on gets the CLI,
    with one worker on sqlite all the same."""
    on = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}
    for server in (
        MlflowServer(state_dir=tmp_path, port=5000, extra_env=on),
        MlflowServer(state_dir=tmp_path, port=5000, single_process=False),
    ):
        command = server.command()
        assert command[1:4] == ["-m", "mlflow", "server"]
        assert command[command.index("--workers") + 1] == "1"
