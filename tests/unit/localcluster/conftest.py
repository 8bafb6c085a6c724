"""hack/cluster's package is not installed: its directory goes on sys.path, as cluster.py puts
it there."""

from __future__ import annotations

import sys
from pathlib import Path

HACK_CLUSTER = Path(__file__).resolve().parents[3] / "hack" / "cluster"
if str(HACK_CLUSTER) not in sys.path:
    sys.path.insert(0, str(HACK_CLUSTER))
