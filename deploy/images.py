"""The images: which engine builds them, on which Python base, then building, loading them into
kind, or pushing them to the registry EKS pulls from."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from deploy.context import TOOL_HINTS, Ctx
from deploy.options import (
    COMPONENTS,
    DEFAULT_BASE_IMAGE,
    ENGINES,
    LOCAL_BASE_IMAGE,
    Image,
    app_version,
)
from deploy.shell import StepFailed


def base_tag(ctx: Ctx) -> str:
    return ctx.opts.tag or app_version(ctx.opts.chart)


def find_engine(ctx: Ctx) -> None:
    """The engine that builds the images: --engine, else Docker when its daemon answers, else
    Podman (which needs no daemon)."""
    wanted = (ctx.opts.engine,) if ctx.opts.engine else ENGINES
    installed = [name for name in wanted if ctx.tools.get(name)]
    if not installed:
        hints = "\n".join(f"  {name}: {TOOL_HINTS[name]}" for name in wanted)
        raise StepFailed(f"no container engine found to build the images; install one:\n{hints}")
    problems = []
    for name in installed:
        info = ctx.run(name, "info", "--format", ENGINE_VERSION[name], check=False)
        if info.ok:
            ctx.state.images.engine = name
            ctx.console.info(f"{name} {info.stdout.strip()} ({ctx.tools[name]})")
            return
        problems.append(f"{name}: " + (info.stderr.strip().splitlines() or ["no answer"])[-1])
    hint = (
        "Docker is installed but its daemon does not answer: start Docker Desktop, or the "
        "service (`sudo systemctl start docker`), then retry."
        if installed == ["docker"]
        else "no container engine answers."
    )
    raise StepFailed(hint + "\n" + "\n".join(problems))


# `<engine> info` answers with the server's version only when the engine works.
ENGINE_VERSION = {"docker": "{{.ServerVersion}}", "podman": "{{.Version.Version}}"}


def image_exists(ctx: Ctx, ref: str) -> bool:
    return ctx.run(ctx.state.images.engine, "image", "inspect", ref, check=False).ok


def resolve_base(ctx: Ctx) -> str:
    """The Python base the images are built on: --base-image if given; else the Dockerfile's
    default when it is here or can be pulled; else the local Debian base, built on the spot by
    images/local-base.sh (air-gapped hosts, or no registry that serves the official image)."""
    if ctx.opts.base_image:
        return ctx.opts.base_image
    if image_exists(ctx, DEFAULT_BASE_IMAGE):
        return DEFAULT_BASE_IMAGE
    if image_exists(ctx, LOCAL_BASE_IMAGE):
        ctx.console.info(f"using the local base {LOCAL_BASE_IMAGE} (images/local-base.sh)")
        return LOCAL_BASE_IMAGE
    pull = ctx.run(ctx.state.images.engine, "pull", DEFAULT_BASE_IMAGE, check=False, timeout=600)
    if pull.ok:
        return DEFAULT_BASE_IMAGE
    reason = (pull.stderr.strip().splitlines() or ["no answer"])[-1]
    ctx.console.warn(
        f"cannot pull {DEFAULT_BASE_IMAGE} ({reason}); building the local Debian base "
        f"{LOCAL_BASE_IMAGE} with {ctx.opts.local_base_script.relative_to(ctx.opts.repo)} "
        "instead (about a minute, needs root and debootstrap)"
    )
    ctx.cmds.run(
        [str(ctx.opts.local_base_script), ctx.state.images.engine], capture=False, timeout=1800
    )
    return LOCAL_BASE_IMAGE


def build_images(ctx: Ctx) -> None:
    opts = ctx.opts
    engine = ctx.state.images.engine
    if not opts.dockerfile.is_file():
        raise StepFailed(f"{opts.dockerfile} not found")
    base = resolve_base(ctx)
    tag = base_tag(ctx)
    images: list[Image] = []
    for component in COMPONENTS:
        image = Image(component, tag, opts.image_registry)
        ctx.console.info(f"building {image.ref} (target {component}, {engine})")
        started = ctx.clock()
        build = [
            "--target",
            component,
            "-f",
            str(opts.dockerfile),
            "--build-arg",
            f"PYTHON_IMAGE={base}",
            "-t",
            image.ref,
        ]
        if opts.platform and engine == "docker":
            # Cross-platform builds (e.g. arm64 nodes) need buildx, which pushes as it builds;
            # the registry's digest of what it pushed is what the chart deploys.
            metadata = Path(tempfile.mkdtemp(prefix="mlkube-buildx-")) / "metadata.json"
            ctx.run(
                engine,
                "buildx",
                "build",
                "--platform",
                opts.platform,
                *build,
                "--push",
                "--metadata-file",
                str(metadata),
                str(opts.repo),
            )
            image = replace(image, digest=pushed_digest(metadata))
        else:
            if opts.platform:
                build = ["--platform", opts.platform, *build]
            # Streamed: a cold build takes minutes, and its log is the progress.
            ctx.run(engine, "build", *build, str(opts.repo), capture=False)
            if not opts.tag:
                image = content_tagged(ctx, image)
        images.append(image)
        ctx.console.info(f"built {image.ref} ({ctx.clock() - started:.1f}s)")
    ctx.state.images.built = images
    show_sizes(ctx)


def content_tagged(ctx: Ctx, image: Image) -> Image:
    """The image tagged with its content id as well (``<appVersion>-<id>``), on every target: a
    rebuilt image gets a new tag, so the helm upgrade rolls exactly the pods whose image changed,
    and a node never keeps running an older image that had the same tag (EKS's IfNotPresent)."""
    engine = ctx.state.images.engine
    image_id = ctx.run(engine, "image", "inspect", "--format", "{{.Id}}", image.ref).stdout.strip()
    unique = replace(image, tag=f"{image.tag}-{image_id.split(':')[-1][:12]}")
    ctx.run(engine, "tag", image.ref, unique.ref)
    return unique


def pushed_digest(metadata: Path) -> str:
    """The ``sha256:...`` digest buildx pushed, from its ``--metadata-file``."""
    try:
        digest = json.loads(metadata.read_text()).get("containerimage.digest", "")
    except (OSError, ValueError) as exc:
        raise StepFailed(f"buildx wrote no readable metadata ({metadata}): {exc}") from exc
    if not str(digest).startswith("sha256:"):
        raise StepFailed(f"buildx metadata {metadata} has no containerimage.digest")
    return str(digest)


def show_sizes(ctx: Ctx) -> None:
    for image in ctx.state.images.built:
        if image.digest:
            continue  # pushed by buildx, not in the local store
        size = ctx.run(
            ctx.state.images.engine,
            "image",
            "inspect",
            "--format",
            "{{.Size}}",
            image.ref,
            check=False,
        ).stdout.strip()
        shown = f"{int(size) / 1e6:.0f} MB" if size.isdigit() else "size unknown"
        ctx.console.info(f"{image.ref:<40} {shown}")


def planned_images(ctx: Ctx) -> None:
    """--no-build: use the images that are already there, tagged with the chart's appVersion."""
    tag = base_tag(ctx)
    ctx.state.images.built = [Image(c, tag, ctx.opts.image_registry) for c in COMPONENTS]
    ctx.console.info("using " + ", ".join(i.ref for i in ctx.state.images.built))


def load_images(ctx: Ctx) -> None:
    refs = [image.ref for image in ctx.state.images.built]
    ctx.console.info(f"copying {len(refs)} images into the node (unchanged ones are skipped)")
    ctx.run("kind", "load", "docker-image", "--name", ctx.opts.cluster, *refs)
    ctx.console.info(f"loaded {len(refs)} images into kind cluster {ctx.opts.cluster}")


def import_local_images(ctx: Ctx) -> None:
    """Into the local cluster's node: its containerd imports what the engine saves (an image
    already there under the same id is skipped)."""
    refs = [image.ref for image in ctx.state.images.built]
    ctx.cmds.run(
        [
            ctx.tool("python"),
            str(ctx.opts.local_cluster_script),
            "images",
            "--engine",
            ctx.state.images.engine or "podman",
            *refs,
        ],
        capture=False,
        timeout=1800,
    )
    ctx.console.info(f"imported {len(refs)} images into the local cluster's node")


def push_images(ctx: Ctx) -> None:
    for image in ctx.state.images.built:
        if image.digest:
            ctx.console.info(f"{image.ref}: pushed by buildx while building")
            continue
        ctx.run(ctx.state.images.engine, "push", image.ref)
        ctx.console.info(f"pushed {image.ref}")
