"""Importing ``skops.io`` (MLflow loads scikit-learn models with it) without importing every
scikit-learn module.

At import, skops lists the names of all scikit-learn estimators it trusts by default through
``sklearn.utils.all_estimators()``, which imports every scikit-learn module (scipy.stats and the
rest): ~0.5-0.7 s of CPU here, paid on every start for modules a model server never uses. The
names depend only on the scikit-learn version, so they are kept in ``skops_names.json`` (beside
this file) and handed to skops as stand-in classes that carry just those names; skops computes
exactly the list it would have. When the installed scikit-learn or skops is not the one the file
was made with, skops is imported as usual. ``python -m service.skops_names`` rewrites the file;
``tests/unit/service/test_skops_names.py`` fails when it is stale.
"""

from __future__ import annotations

import json
import logging
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

NAMES_FILE = Path(__file__).with_name("skops_names.json")

log = logging.getLogger(__name__)


def installed_versions() -> dict[str, str]:
    return {"scikit-learn": version("scikit-learn"), "skops": version("skops")}


def real_names() -> list[str]:
    """What skops computes at import: every estimator's ``module.Class`` under ``sklearn.``."""
    from sklearn.utils import all_estimators
    from skops.io._utils import get_type_name

    names = [get_type_name(cls) for _, cls in all_estimators()]
    return [n for n in names if n.startswith("sklearn.")]


def cached_names() -> list[str] | None:
    """The names from the file, when it was made with the installed versions."""
    try:
        cached: dict[str, Any] = json.loads(NAMES_FILE.read_text())
        if cached.get("versions") != installed_versions():
            return None
        return [str(n) for n in cached["names"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def import_skops() -> None:
    """Import ``skops.io``, with the cached names when they fit the installed versions."""
    if "skops.io" in sys.modules:
        return
    names = cached_names()
    if names is None:
        log.info(
            "%s does not match the installed scikit-learn/skops: importing skops as usual",
            NAMES_FILE.name,
        )
        import skops.io  # noqa: F401

        return
    import sklearn.utils

    stand_ins = []
    for name in names:
        module, _, cls = name.rpartition(".")
        stand_ins.append((cls, type(cls, (), {"__module__": module})))
    real = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda type_filter=None: stand_ins
    try:
        import skops.io  # noqa: F401
    finally:
        sklearn.utils.all_estimators = real


def main() -> int:
    NAMES_FILE.write_text(
        json.dumps({"versions": installed_versions(), "names": real_names()}, indent=1) + "\n"
    )
    sys.stdout.write(f"wrote {NAMES_FILE}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
