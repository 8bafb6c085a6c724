"""``make deploy`` and friends: kind or EKS, driven from Python (kubectl, docker, kind, pyhelm3).

``python -m deploy <command>``; see :mod:`deploy.cli`."""

from deploy.cli import main

__all__ = ["main"]
