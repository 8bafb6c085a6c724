"""The env vars of the contract, and `python -m service` refusing a bad environment."""

from __future__ import annotations

import pytest

from service.__main__ import main
from service.settings import Settings

CONTRACT = {
    "MLFLOW_TRACKING_URI", "MODEL_NAME", "MODEL_ALIAS", "MODEL_VERSION", "MODEL_WATCH_SECONDS",
    "SERVE_HOST", "SERVE_PORT", "SERVE_MAX_ROWS", "SERVE_MAX_BODY_BYTES", "SERVE_BATCHING",
    "SERVE_BATCH_MAX_WAIT_MS", "SERVE_BATCH_MAX_ROWS", "LOG_LEVEL",
}  # fmt: skip


def test_env_vars_are_exactly_the_contract() -> None:
    assert {f.alias for f in Settings.model_fields.values()} == CONTRACT


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CONTRACT:
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert (s.model_name, s.model_alias, s.model_version) == ("iris-classifier", "production", None)
    assert (s.host, s.port) == ("0.0.0.0", 8080)
    assert s.batching is True
    assert s.model_watch_seconds == 0
    assert s.model_uri_description == "models:/iris-classifier@production"


def test_read_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_VERSION", "7")
    monkeypatch.setenv("SERVE_BATCHING", "false")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    s = Settings()
    assert s.model_uri_description == "models:/iris-classifier/7"
    assert s.batching is False
    assert s.log_level == "WARNING"  # one accepted form for every component: upper case


@pytest.mark.parametrize(
    ("name", "value"),
    [("SERVE_PORT", "eighty"), ("MODEL_VERSION", "v3"), ("SERVE_MAX_ROWS", "0"),
     ("LOG_LEVEL", "loud"), ("MODEL_WATCH_SECONDS", "-1")],
)  # fmt: skip
def test_bad_env_exits_2_naming_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)
    assert main([]) == 2
    assert name in capsys.readouterr().err


def test_help_lists_every_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CONTRACT)
