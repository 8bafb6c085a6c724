"""In a fresh interpreter, the model server's skops import trusts what skops would trust and
leaves scikit-learn's unused modules unimported (the cached names of ``service.skops_names``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.skops_names import real_names

pytestmark = [pytest.mark.integration]


def test_skops_trusts_the_same_types_and_imports_less() -> None:
    """skops' default trusted list is the one it computes itself, and scikit-learn's unused
    modules (gaussian_process, datasets...) were not imported."""
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
