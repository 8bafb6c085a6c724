"""``python -m mlkube.deploy <command>``: forwards to ``mlkube <command>`` (the deploy driver),
with a one-line note on stderr. Deprecated: use ``mlkube <command>`` or ``python -m deploy``."""

import sys

sys.stderr.write(
    "note: `python -m mlkube.deploy` is deprecated; run `mlkube <command>` (or "
    "`python -m deploy <command>`) instead\n"
)

from deploy.cli import main  # noqa: E402  (after the note: a broken import still shows it)

sys.exit(main())
