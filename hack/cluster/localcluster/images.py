"""The mlkube images onto the node: `podman save` (archives cached by image ID), then
`ctr images import` into containerd's k8s.io namespace; an image the node has is skipped."""

from __future__ import annotations

import json
import time

from localcluster.config import Config
from localcluster.host import ClusterError, Host


def pick_ref(name: str, listed: list[str], app_version: str) -> str | None:
    """Of the tags podman lists for localhost/mlkube-<name>, the plain ``<appVersion>`` one
    (`make images` also tags ``<appVersion>-<image id>``), else the newest (podman lists it
    first); None when there is none."""
    plain = [
        r for r in listed if r.split(":")[-1].count("-") == 0 and r.endswith(f":{app_version}")
    ]
    return plain[0] if plain else (listed[0] if listed else None)


def image_refs(host: Host) -> list[str]:
    """The mlkube images `make images` built: localhost/mlkube-<name>:<tag>, newest per name."""
    cfg: Config = host.cfg
    refs = []
    for n in cfg.images:
        if cfg.image_tag:
            refs.append(f"localhost/mlkube-{n}:{cfg.image_tag}")
            continue
        listed = host.run(
            ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", f"localhost/mlkube-{n}"]
        ).stdout.split()
        ref = pick_ref(n, listed, cfg.app_version)
        if ref is None:
            raise ClusterError(f"no podman image localhost/mlkube-{n}: run `make images` first")
        refs.append(ref)
    return refs


def import_images(host: Host, refs: list[str], engine: str = "podman") -> None:
    """Import the mlkube images into the node's containerd (namespace k8s.io).
    Archives are cached by image ID, so an unchanged image is not re-saved."""
    cfg = host.cfg
    cache = cfg.cache / "images" / "mlkube"
    cache.mkdir(parents=True, exist_ok=True)
    listing = host.run([*host.crictl(), "images", "-o", "json"]).stdout
    have = {
        tag: img["id"] for img in json.loads(listing)["images"] for tag in img.get("repoTags") or []
    }
    for ref in refs:
        t = time.monotonic()
        image_id = host.run([engine, "image", "inspect", "--format", "{{.Id}}", ref]).stdout.strip()
        if not image_id:
            raise ClusterError(f"{engine} has no image {ref}")
        tar = cache / f"{image_id[:20]}.tar"
        if not tar.exists():
            tmp = tar.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            fmt = ["--format", "docker-archive"] if engine == "podman" else []
            host.run([engine, "save", *fmt, "-o", str(tmp), ref], timeout=900)
            tmp.rename(tar)
            for old in cache.glob("*.tar"):
                if old != tar and old.stat().st_mtime < tar.stat().st_mtime - 7 * 86400:
                    old.unlink()
        if have.get(ref, "").removeprefix("sha256:") == image_id.removeprefix("sha256:"):
            host.say(f"images: {ref} already in the node ({image_id[:12]})")
            continue
        host.ctr("images", "import", str(tar), timeout=900)
        host.say(f"images: {ref} imported ({time.monotonic() - t:.1f}s)")
    print(host.run([*host.crictl(), "images"], check=False).stdout, file=host.out, flush=True)
