"""The README moves with the code: every env var and make target it should name, it names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from jobs.settings import TrainSettings
from rollout.settings import OperatorSettings
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


@pytest.mark.parametrize("settings", [TrainSettings, Settings, OperatorSettings])
def test_every_env_var_is_in_the_configuration_reference(settings: type[BaseSettings]) -> None:
    reference = README.split("## Configuration reference", 1)[1]
    missing = [
        info.alias
        for info in settings.model_fields.values()
        if info.alias and f"`{info.alias}`" not in reference
    ]
    assert not missing, f"README's configuration reference lacks {missing}"


def test_quick_start_is_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make up", "make test"]


def test_every_make_target_named_in_the_readme_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z0-9_-]+):", makefile, re.M))
    named = set(re.findall(r"`make ([a-z0-9-]+)", README))
    assert named <= targets, f"README names missing targets: {sorted(named - targets)}"


def test_linked_files_exist() -> None:
    links = re.findall(r"\]\(((?!https?:)[^)#]+)\)", README)
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, missing
