"""`make up` holds its state directory: a second stack on the same sqlite would corrupt it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from embedded.up import StateInUse, lock_state


def test_a_second_up_on_the_same_state_is_refused_naming_the_holder(tmp_path: Path) -> None:
    held = lock_state(tmp_path / "state")
    try:
        with pytest.raises(StateInUse, match=rf"in use by another `make up` \(pid {os.getpid()}\)"):
            lock_state(tmp_path / "state")
        os.close(lock_state(tmp_path / "other"))  # another state directory is fine
    finally:
        os.close(held)
    os.close(lock_state(tmp_path / "state"))  # released with its holder
