"""The GitHub workflows: every action pinned by commit, least privilege, the make targets they run
(actionlint runs in `make lint`; their shell snippets run in tests/integration)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from deploy.options import COMPONENTS

REPO = Path(__file__).resolve().parents[3]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>\S+)(?:\s*#\s*(?P<comment>.*))?$")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    if True in data:  # YAML 1.1 reads the `on:` key as a boolean
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def test_the_four_workflows_exist() -> None:
    assert [p.name for p in WORKFLOWS] == ["ci.yml", "e2e-kind.yml", "images.yml", "promote.yml"]


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    seen: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = USES.match(line)
            if not match:
                continue
            ref, where = match["ref"], f"{path.name}:{number}"
            assert PINNED.match(ref), f"{where}: {ref} is not pinned to a 40-hex commit SHA"
            assert re.fullmatch(r"v\d+\.\d+\.\d+", match["comment"] or ""), (
                f"{where}: {ref} needs a `# vX.Y.Z` comment naming the release it is"
            )
            action, sha = ref.split("@")
            seen.setdefault(action, set()).add(f"{sha} {match['comment']}")
    # One version of each action across the workflows.
    assert {a: v for a, v in seen.items() if len(v) > 1} == {}
    assert "actions/checkout" in seen
    assert "docker/build-push-action" in seen


def test_every_uses_line_is_seen_by_the_pin_check() -> None:
    """The regex above must not miss a `uses:` the YAML has (e.g. written differently)."""
    for path in WORKFLOWS:
        in_yaml = [s["uses"] for s in steps(load(path)) if "uses" in s]
        in_text = [m["ref"] for m in map(USES.match, path.read_text().splitlines()) if m]
        assert in_yaml == in_text, path.name


def test_least_privilege() -> None:
    for path in WORKFLOWS:
        workflow = load(path)
        assert workflow.get("permissions") == {"contents": "read"}, path.name
        for name, job in workflow["jobs"].items():
            granted = job.get("permissions", {})
            assert isinstance(granted, dict), f"{path.name}:{name}: {granted!r}"  # not write-all
            writes = {k for k, v in granted.items() if v == "write"}
            allowed = {"packages"} if path.name == "images.yml" else set()
            assert writes <= allowed, f"{path.name}:{name} asks for {writes}"
            assert "timeout-minutes" in job, f"{path.name}:{name} has no timeout"
        for step in steps(workflow):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, path.name


def test_make_targets_run_by_the_workflows_exist() -> None:
    targets = set(re.findall(r"^([a-zA-Z0-9_-]+):", (REPO / "Makefile").read_text(), re.M))
    for path in WORKFLOWS:
        for step in steps(load(path)):
            for target in re.findall(r"\bmake\s+([a-z0-9-]+)", step.get("run", "")):
                assert target in targets, f"{path.name}: make {target} is not in the Makefile"


def test_images_build_every_target_and_helm_matches_the_pinned_tools() -> None:
    images = load(REPO / ".github" / "workflows" / "images.yml")
    assert images["jobs"]["images"]["strategy"]["matrix"]["target"] == list(COMPONENTS)
    assert images["on"]["push"]["tags"] == ["v*"]
    pinned = re.search(r"^HELM_VERSION=(v\S+)$", (REPO / "tools.versions").read_text(), re.M)
    assert pinned, "tools.versions pins HELM_VERSION"
    for path in WORKFLOWS:
        for step in steps(load(path)):
            if step.get("uses", "").startswith("azure/setup-helm@"):
                assert step["with"]["version"] == pinned[1], path.name


# --- promote.yml: which run the gate looks at -----------------------------------------------------
