"""The house has floors: the shared core imports no component, and the components (jobs,
service, rollout, the deploy driver, the local runner) never import each other,
only the core below them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
COMPONENTS = {"jobs": "jobs", "service": "service", "rollout": "rollout",
              "deploy": "deploy", "embedded": "embedded"}  # fmt: skip


def imports(folder: Path) -> dict[str, set[str]]:
    """Module file -> the modules it imports (absolute names), for every .py under folder."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_core_imports_no_component() -> None:
    for path, names in imports(REPO / "mlkube" / "core").items():
        bad = {n for n in names for c in COMPONENTS if under(n, c)}
        assert not bad, f"{path} imports {sorted(bad)}: the core must stay at the bottom"


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_components_do_not_import_each_other(component: str) -> None:
    others = [c for c in COMPONENTS if c != component and not under(c, component)]
    for path, names in imports(REPO / COMPONENTS[component]).items():
        bad = {n for n in names for other in others if under(n, other)}
        assert not bad, f"{path} imports {sorted(bad)}: go through mlkube.core instead"
