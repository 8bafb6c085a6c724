#!/usr/bin/env python3
"""The local cluster's entry point (`make cluster-up`, `.ci/run`, the tests, the deploy driver):
``up``, ``down``, ``status``, ``images``, ``build`` and ``env``; the code is the localcluster
package beside it (see its cli module, or `cluster.py --help`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from localcluster.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
