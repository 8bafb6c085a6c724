"""The operator's env vars (the chart's contract), its CLI's answers to bad input, and RBAC."""

from __future__ import annotations

import pytest

from mlkube.core.registry import MLFLOW_CLIENT_DEFAULTS
from rollout import cli, rbac
from rollout.settings import OperatorSettings, env_names


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*env_names(), *MLFLOW_CLIENT_DEFAULTS]:
        monkeypatch.delenv(name, raising=False)
    # cli.run sets these defaults for MLflow's client: keep them out of the test process.
    for name, value in MLFLOW_CLIENT_DEFAULTS.items():
        monkeypatch.setenv(name, value)


def test_env_vars_are_the_contract() -> None:
    assert sorted(env_names()) == sorted([
        "MLFLOW_TRACKING_URI",
        "ROLLOUT_POLL_SECONDS",
        "ROLLOUT_WEBHOOK_SECRET",
        "ROLLOUT_HTTP_PORT",
        "ROLLOUT_NAMESPACE",
        "ROLLOUT_CLUSTER_WIDE",
        "LOG_LEVEL",
    ])  # fmt: skip


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = OperatorSettings()
    assert (settings.poll_seconds, settings.http_port, settings.cluster_wide) == (15.0, 8000, False)
    assert settings.webhook_secret.get_secret_value() == ""
    monkeypatch.setenv("ROLLOUT_POLL_SECONDS", "2.5")
    monkeypatch.setenv("ROLLOUT_WEBHOOK_SECRET", "abc")
    monkeypatch.setenv("ROLLOUT_CLUSTER_WIDE", "true")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = OperatorSettings()
    assert settings.poll_seconds == 2.5
    assert settings.webhook_secret.get_secret_value() == "abc"
    assert "abc" not in repr(settings)  # the secret never lands in logs
    assert settings.cluster_wide
    assert settings.log_level == "DEBUG"


def test_namespace_and_cluster_wide_exclude_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_NAMESPACE", "mlkube")
    monkeypatch.setenv("ROLLOUT_CLUSTER_WIDE", "true")
    with pytest.raises(ValueError, match="ROLLOUT_NAMESPACE and ROLLOUT_CLUSTER_WIDE"):
        OperatorSettings()


def test_cli_names_the_bad_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--poll-seconds", "0"]) == cli.EXIT_BAD_INPUT
    assert "--poll-seconds / ROLLOUT_POLL_SECONDS" in capsys.readouterr().err


def test_cli_names_the_bad_env_var(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROLLOUT_HTTP_PORT", "eighty")
    assert cli.main([]) == cli.EXIT_BAD_INPUT
    assert "ROLLOUT_HTTP_PORT" in capsys.readouterr().err


def test_cli_rejects_namespace_with_all_namespaces(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["-n", "a", "-A"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_without_kubeconfig_says_so(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nope"
    assert cli.main(["--kubeconfig", str(missing), "-n", "x"]) == cli.EXIT_BAD_INPUT
    assert f"--kubeconfig {missing}: no such file" in capsys.readouterr().err


def test_register_webhook_needs_the_secret_and_a_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["register-webhook", "--url", "http://rollout:8000/webhook"]
    assert cli.main(args) == cli.EXIT_BAD_INPUT
    assert "ROLLOUT_WEBHOOK_SECRET is empty" in capsys.readouterr().err
    monkeypatch.setenv("ROLLOUT_WEBHOOK_SECRET", "s")
    assert cli.main(["register-webhook", "--url", "rollout:8000"]) == cli.EXIT_BAD_INPUT
    assert "--url 'rollout:8000'" in capsys.readouterr().err


def test_register_webhook_reports_unreachable_mlflow(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlkube.core.processes import free_port

    monkeypatch.setenv("ROLLOUT_WEBHOOK_SECRET", "s")
    dead = f"http://127.0.0.1:{free_port()}"
    args = ["register-webhook", "--url", "http://r:8000/webhook", "--tracking-uri", dead]
    # It waits for MLflow first (a post-install hook starts beside a server still starting),
    # retrying with backoff for --wait seconds, then says so plainly.
    assert cli.main([*args, "--wait", "0.4"]) == cli.EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert f"MLflow at {dead} did not answer after" in err
    assert "attempts in 0s" in err


def test_rbac_rules_are_minimal_and_explicit() -> None:
    assert rbac.permissions() == {
        ("apps", "deployments", "get"),
        ("apps", "deployments", "list"),
        ("apps", "deployments", "watch"),
        ("apps", "deployments", "patch"),
        ("apps", "deployments", "create"),  # the canary Deployment
        ("apps", "deployments", "delete"),
        ("", "events", "create"),
        ("", "pods", "list"),
    }
    for rule in rbac.RULES:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert set(rule) == {"apiGroups", "resources", "verbs"}
