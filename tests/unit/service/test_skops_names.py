"""The estimator names the model server hands skops at import are the ones skops would compute
itself, for the installed scikit-learn (so what a model may contain is trusted exactly as
before)."""

from __future__ import annotations

import subprocess
import sys

from service.skops_names import NAMES_FILE, cached_names, real_names


def test_the_names_file_is_fresh() -> None:
    names = cached_names()
    assert names is not None, (
        f"{NAMES_FILE.name} was made with another scikit-learn or skops than the installed ones: "
        "run `python -m service.skops_names` and commit the file"
    )
    assert names == real_names()


def test_skops_trusts_the_same_types_and_imports_less() -> None:
    """In a fresh interpreter: skops' default trusted list is the one it computes itself, and
    scikit-learn's unused modules (gaussian_process, datasets...) were not imported."""
    code = (
        "import sys; import sklearn.pipeline; from service.skops_names import import_skops; "
        "import_skops(); from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as n; "
        "print(len(n), 'sklearn.svm._classes.SVC' in n, 'sklearn.gaussian_process' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, has_svc, imported_unused = out.stdout.split()
    assert int(count) == len(real_names())
    assert has_svc == "True"
    assert imported_unused == "False"
