"""``make deploy`` and friends: kind or EKS, driven from Python (kubectl, docker, kind, pyhelm3).

``mlkube <command>`` (or ``python -m deploy <command>``); see :mod:`deploy.cli`. Its end-to-end
harness, ``make e2e``, is test support: :mod:`deploy.e2e`."""

from deploy.cli import main

__all__ = ["main"]
