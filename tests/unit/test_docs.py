"""The docs move with the code: every env var and make target the README should name, it names;
every relative link in the Markdown resolves."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from jobs.settings import TrainSettings
from rollout.settings import OperatorSettings
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


CONFIGURATION = REPO / "docs" / "configuration.md"


@pytest.mark.parametrize("settings", [TrainSettings, Settings, OperatorSettings])
def test_every_env_var_is_in_the_configuration_reference(settings: type[BaseSettings]) -> None:
    reference = CONFIGURATION.read_text()
    missing = [
        info.alias
        for info in settings.model_fields.values()
        if info.alias and f"`{info.alias}`" not in reference
    ]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    """docs/configuration.md is what scripts/config-reference.py writes now: a changed field
    (a default, a description, a new variable) without `make docs` fails here."""
    spec = importlib.util.spec_from_file_location(
        "config_reference", REPO / "scripts" / "config-reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert CONFIGURATION.read_text() == module.render(), "docs/configuration.md is stale: make docs"
    assert "[docs/configuration.md](docs/configuration.md)" in README


def test_quick_start_is_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make up", "make test"]


def test_every_make_target_named_in_the_docs_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z0-9_-]+):", makefile, re.M))
    for doc in [
        REPO / "README.md",
        REPO / "CONTRIBUTING.md",
        *sorted((REPO / "docs").glob("*.md")),
    ]:
        named = set(re.findall(r"`make ([a-z0-9-]+)", doc.read_text()))
        assert named <= targets, f"{doc.name} names missing targets: {sorted(named - targets)}"


# Folders that hold no Markdown of ours: tools, caches, the venv, build output.
NOT_OURS = {"bin", "node_modules", "__pycache__"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def markdown_files(root: Path) -> list[Path]:
    """Every Markdown file of the repository (the same set as `git ls-files '*.md'`, without
    running git): hidden folders but .github, ./bin and the build output are left out."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [
            d
            for d in dirs
            if not (
                (d.startswith(".") and d != ".github") or d in NOT_OURS or d.endswith(".egg-info")
            )
        ]
        found += [Path(folder, f) for f in files if f.endswith(".md")]
    return sorted(found)


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a file's headings: lower case, punctuation dropped, spaces to -."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", FENCE.sub("", markdown), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def dead_links(md: Path) -> list[str]:
    """The relative links of one Markdown file whose file, or heading, is not there."""
    text = FENCE.sub("", md.read_text())
    dead = []
    for match in LINK.finditer(text):
        link = match.group(1) or match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", link) or link.startswith("<"):
            continue  # https:, mailto: ...: not ours to check here
        path, _, anchor = link.partition("#")
        target = (md.parent / path).resolve() if path else md
        if not target.exists():
            dead.append(link)
        elif anchor and target.suffix == ".md" and anchor not in anchors(target.read_text()):
            dead.append(link)
    return dead


def test_every_relative_link_in_the_markdown_resolves() -> None:
    files = markdown_files(REPO)
    assert REPO / "README.md" in files
    assert REPO / "deploy" / "README.md" in files
    dead = {str(md.relative_to(REPO)): links for md in files if (links := dead_links(md))}
    assert not dead, f"dead relative links (file, or #heading): {dead}"


def test_a_dead_link_or_heading_is_caught(tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "README.md").write_text("# Guide\n\n## The images\n")
    doc = tmp_path / "README.md"
    doc.write_text(
        "[ok](guide/README.md) [ok](guide/README.md#the-images) [web](https://x.io/y.md)\n"
        "[moved](deploy/README.md#images) [gone](guide/README.md#images) [self](#nope)\n"
        "```sh\n[not a link](in/a/fence.md)\n```\n[ref]: old/place.md\n"
    )
    assert markdown_files(tmp_path) == [tmp_path / "README.md", tmp_path / "guide" / "README.md"]
    assert dead_links(doc) == [
        "deploy/README.md#images",
        "guide/README.md#images",
        "#nope",
        "old/place.md",
    ]


def layout_paths() -> list[str]:
    """The paths the README's "Repository layout" block names, one per line."""
    section = README.split("## Repository layout", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None, "the README's layout has no code block"
    return [line.split()[0] for line in block.group(1).splitlines() if line and line[0] != " "]


def test_the_readme_layout_matches_the_tree() -> None:
    """Every path the layout names exists, and every top-level folder of ours is named."""
    named = layout_paths()
    missing = [path for path in named if not (REPO / path).exists()]
    assert not missing, f"the README's layout names paths that do not exist: {missing}"
    folders = {
        entry.name + "/"
        for entry in REPO.iterdir()
        if entry.is_dir()
        and not entry.name.startswith(".")
        and entry.name not in NOT_OURS
        and not entry.name.endswith(".egg-info")
    }
    tops = {path.split("/", 1)[0] + "/" for path in named}
    assert folders <= tops, f"the README's layout leaves out {sorted(folders - tops)}"
