"""`make images`: which engine builds, which base it builds on, and what the user reads."""

from __future__ import annotations

from pathlib import Path

from deploy.options import DEFAULT_BASE_IMAGE, LOCAL_BASE_IMAGE, Options
from deploy.plans import plan_images
from deploy.runner import run_steps
from tests.unit.deploy.fakes import ALL_TOOLS, FakeCommands, fail, make_ctx, ok

PODMAN_ONLY = {**ALL_TOOLS, "docker": None, "podman": "/usr/bin/podman"}
BOTH = {**ALL_TOOLS, "podman": "/usr/bin/podman"}


def sizes(cmds: FakeCommands, engine: str) -> FakeCommands:
    return cmds.on(engine, "image", "inspect", "--format", "{{.Size}}", answer=ok("697123456\n"))


def build_arg(build: list[str]) -> str:
    return build[build.index("--build-arg") + 1]


def test_podman_builds_when_no_docker_daemon_answers(repo: Path) -> None:
    cmds = FakeCommands().on("docker", "info", answer=fail("Cannot connect to the Docker daemon"))
    cmds.on("podman", "info", answer=ok("4.3.1\n"))
    sizes(cmds, "podman")
    ctx, out, _ = make_ctx(Options(repo=repo, tag="dev"), cmds, tools=BOTH)

    assert run_steps(plan_images(ctx.opts), ctx) == 0, out.getvalue()

    builds = cmds.ran("podman", "build")
    assert [b[b.index("--target") + 1] for b in builds] == ["mlflow", "train", "serve", "rollout"]
    assert not cmds.ran("docker", "build")
    text = out.getvalue()
    assert "podman 4.3.1" in text
    assert "mlkube-serve:dev" in text
    assert "697 MB" in text


def test_no_engine_names_both_and_how_to_install(repo: Path) -> None:
    tools = {**ALL_TOOLS, "docker": None, "podman": None}
    ctx, out, _ = make_ctx(Options(repo=repo), FakeCommands(), tools=tools)

    assert run_steps(plan_images(ctx.opts), ctx) == 1

    text = out.getvalue()
    assert "no container engine found" in text
    assert "docker: install Docker" in text
    assert "podman: install Podman" in text
    assert "apt-get install podman" in text


def test_an_unpullable_base_builds_the_local_debian_base(repo: Path) -> None:
    cmds = FakeCommands().on("podman", "info", answer=ok("4.3.1"))
    cmds.on("podman", "image", "inspect", answer=fail("image not known"))
    cmds.on("podman", "pull", answer=fail("dial tcp: lookup registry: no such host"))
    sizes(cmds, "podman")
    ctx, out, _ = make_ctx(Options(repo=repo, tag="dev"), cmds, tools=PODMAN_ONLY)

    assert run_steps(plan_images(ctx.opts), ctx) == 0, out.getvalue()

    assert cmds.ran("local-base.sh") == [["local-base.sh", "podman"]]
    assert cmds.index("local-base.sh") < cmds.index("podman", "build")
    assert {build_arg(b) for b in cmds.ran("podman", "build")} == {
        f"PYTHON_IMAGE={LOCAL_BASE_IMAGE}"
    }
    text = out.getvalue()
    assert f"cannot pull {DEFAULT_BASE_IMAGE} (dial tcp: lookup registry: no such host)" in text
    assert "building the local Debian base" in text


def test_an_existing_local_base_is_used_without_a_pull(repo: Path) -> None:
    cmds = FakeCommands().on("podman", "info", answer=ok("4.3.1"))
    cmds.on("podman", "image", "inspect", DEFAULT_BASE_IMAGE, answer=fail("image not known"))
    sizes(cmds, "podman")
    ctx, out, _ = make_ctx(Options(repo=repo, tag="dev"), cmds, tools=PODMAN_ONLY)

    assert run_steps(plan_images(ctx.opts), ctx) == 0, out.getvalue()

    assert not cmds.ran("podman", "pull")
    assert not cmds.ran("local-base.sh")
    assert build_arg(cmds.ran("podman", "build")[0]) == f"PYTHON_IMAGE={LOCAL_BASE_IMAGE}"


def test_base_image_option_wins(repo: Path) -> None:
    cmds = FakeCommands().on("docker", "info", answer=ok("27.3.1"))
    sizes(cmds, "docker")
    opts = Options(repo=repo, tag="dev", base_image="mirror.internal/python:3.11-slim")
    ctx, out, _ = make_ctx(opts, cmds)

    assert run_steps(plan_images(opts), ctx) == 0, out.getvalue()

    assert not cmds.ran("docker", "pull")
    assert build_arg(cmds.ran("docker", "build")[0]) == (
        "PYTHON_IMAGE=mirror.internal/python:3.11-slim"
    )
