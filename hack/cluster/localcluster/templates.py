"""The manifests and configs beside the code, filled with string.Template: ``$name`` is a
value of the config, ``$$`` a dollar sign; a missing value is an error, not an empty string."""

from __future__ import annotations

from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent
MANIFESTS = ROOT / "manifests"
CONFIGS = ROOT / "configs"


def render(path: Path, **values: object) -> str:
    return Template(path.read_text()).substitute({k: str(v) for k, v in values.items()})


def manifest(name: str, **values: object) -> str:
    return render(MANIFESTS / name, **values)


def config(name: str, **values: object) -> str:
    return render(CONFIGS / name, **values)
