"""The estimator names the model server hands skops at import are the ones skops would compute
itself, for the installed scikit-learn (so what a model may contain is trusted exactly as
before). The fresh-interpreter check of what it imports is in
tests/integration/service/test_skops_imports.py."""

from __future__ import annotations

from service.skops_names import NAMES_FILE, cached_names, real_names


def test_the_names_file_is_fresh() -> None:
    names = cached_names()
    assert names is not None, (
        f"{NAMES_FILE.name} was made with another scikit-learn or skops than the installed ones: "
        "run `python -m service.skops_names` and commit the file"
    )
    assert names == real_names()
