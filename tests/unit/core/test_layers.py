"""The house has floors: the shared core imports no component, and the components (jobs,
service, rollout, the deploy driver, the local runner) never import each other, only the core
below them.

``mlkube/`` is the core but for its programs, the ``__main__`` modules: the ``mlkube`` command
(``mlkube/__main__.py``) and the old ``python -m mlkube.deploy`` (a forwarding shim). Nothing
imports a program, so none is in the core's import graph, and the ``mlkube`` command imports a
component only inside the function that runs its command."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CORE = REPO / "mlkube"
COMPONENTS = {"jobs": "jobs", "service": "service", "rollout": "rollout",
              "deploy": "deploy", "embedded": "embedded"}  # fmt: skip
# The code (the tests may call a program's main to test it).
CODE = ("mlkube", *COMPONENTS.values(), "bench")


def names_in(nodes: list[ast.stmt] | list[ast.AST]) -> set[str]:
    """The absolute module names the given import statements import."""
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imports(folder: Path) -> dict[str, set[str]]:
    """Module file -> the modules it imports (absolute names), for every .py under folder."""
    return {
        str(path.relative_to(REPO)): names_in(list(ast.walk(parse(path))))
        for path in folder.rglob("*.py")
    }


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def is_program(path: str) -> bool:
    return Path(path).name == "__main__.py"


def test_the_core_imports_no_component() -> None:
    core = {path: names for path, names in imports(CORE).items() if not is_program(path)}
    assert "mlkube/core/registry.py" in core
    for path, names in core.items():
        bad = {n for n in names for c in COMPONENTS if under(n, c)}
        assert not bad, f"{path} imports {sorted(bad)}: the core must stay at the bottom"


def test_nothing_imports_a_program() -> None:
    """The ``__main__`` modules (the ``mlkube`` command, the shims) run; the code never imports
    one, so the core's import graph stays free of what they dispatch to."""
    for folder in CODE:
        for path, names in imports(REPO / folder).items():
            bad = {n for n in names if n.endswith(".__main__") or n == "__main__"}
            assert not bad, f"{path} imports {sorted(bad)}: a program is run, not imported"


def test_the_mlkube_command_imports_each_component_only_when_it_runs() -> None:
    tree = parse(CORE / "__main__.py")
    at_import = names_in(tree.body)
    assert not {n for n in at_import for c in COMPONENTS if under(n, c)}, sorted(at_import)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    when_run = names_in([node for f in functions for node in ast.walk(f)])
    assert {"deploy.cli", "embedded.up", "jobs.train"} <= when_run, sorted(when_run)


def test_the_old_deploy_package_only_forwards() -> None:
    shim = CORE / "deploy"
    assert sorted(p.name for p in shim.glob("*.py")) == ["__init__.py", "__main__.py"]
    assert names_in(list(ast.walk(parse(shim / "__init__.py")))) == set()
    assert "deploy.cli" in names_in(list(ast.walk(parse(shim / "__main__.py"))))


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_components_do_not_import_each_other(component: str) -> None:
    others = [c for c in COMPONENTS if c != component and not under(c, component)]
    for path, names in imports(REPO / COMPONENTS[component]).items():
        bad = {n for n in names for other in others if under(n, other)}
        assert not bad, f"{path} imports {sorted(bad)}: go through mlkube.core instead"


def test_the_e2e_harness_is_named_only_by_the_e2e_plan() -> None:
    """deploy/e2e is test support: of the driver, only the command line (its clean-up after an
    e2e run), the plans (the e2e plan) and the state record (the e2e's own) name it."""
    driver = {p: n for p, n in imports(REPO / "deploy").items() if not p.startswith("deploy/e2e/")}
    naming = sorted(p for p, names in driver.items() if any(under(n, "deploy.e2e") for n in names))
    assert naming == ["deploy/cli.py", "deploy/plans.py", "deploy/state.py"]
