"""The first step of every command: are the tools it runs here, and new enough?"""

from __future__ import annotations

import re
from collections.abc import Callable

from deploy.context import TOOL_HINTS, Ctx
from deploy.shell import StepFailed

# The oldest Helm with every flag we (and pyhelm3 under us) pass; the newest of them is
# `uninstall --wait` (3.7). None is Helm-4-only, and pyhelm3 renames the ones Helm 4 changed.
MIN_HELM = (3, 8)


def check_tools(names: tuple[str, ...], docker_daemon: bool) -> Callable[[Ctx], None]:
    """The action that checks ``names`` are installed (and, with ``docker_daemon``, that the
    Docker daemon answers); it names each missing tool with how to get it."""

    def action(ctx: Ctx) -> None:
        # Everything that is wrong at once: a stopped Docker daemon is worth knowing before
        # installing the other tools, not after.
        problems = [
            f"{n} is missing: {TOOL_HINTS.get(n, n)}" for n in names if not ctx.tools.get(n)
        ]
        daemon = ""
        if docker_daemon and ctx.tools.get("docker"):
            info = ctx.run("docker", "info", "--format", "{{.ServerVersion}}", check=False)
            if info.ok:
                daemon = info.stdout.strip()
            else:
                problems.append(
                    "Docker is installed but its daemon does not answer: start Docker Desktop, "
                    "or the service (`sudo systemctl start docker`), then retry.\n"
                    + (info.stderr.strip().splitlines() or [""])[-1]
                )
        if problems:
            raise StepFailed("\n".join(problems))
        for name in names:
            ctx.console.info(f"{name}: {ctx.tools[name]}")
        if "helm" in names:
            ctx.console.info(f"helm version {check_helm_version(ctx)}")
        if daemon:
            ctx.console.info(f"docker daemon {daemon}")

    return action


def check_helm_version(ctx: Ctx) -> str:
    """The helm we run must be 3.8 or later; your own helm on PATH comes before ./bin's."""
    path = ctx.tool("helm")
    fix = (
        f"upgrade {path} to Helm 3.8 or later (https://helm.sh/docs/intro/install/), or take it "
        "off PATH so the pinned ./bin/helm of `make tools` is used"
    )
    answer = ctx.run("helm", "version", "--template", "{{.Version}}", check=False, timeout=30)
    text = (answer.stdout + answer.stderr).strip()
    found = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if not answer.ok or found is None:
        raise StepFailed(
            f"`{path} version` did not tell its version ({text[-300:] or 'no output'}); "
            f"mlkube needs Helm {MIN_HELM[0]}.{MIN_HELM[1]} or later: {fix}"
        )
    major, minor = int(found.group(1)), int(found.group(2))
    version = found.group(0)
    if (major, minor) < MIN_HELM:
        raise StepFailed(
            f"{path} is Helm {version}; mlkube needs Helm {MIN_HELM[0]}.{MIN_HELM[1]} or later "
            f"(it calls `helm uninstall --wait` and `helm upgrade --install --create-namespace "
            f"--output json`): {fix}"
        )
    return version
