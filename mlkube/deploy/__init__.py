"""``make deploy`` and friends: kind or EKS, driven from Python (kubectl, docker, kind, pyhelm3).

``python -m mlkube.deploy <command>``; see :mod:`mlkube.deploy.cli`."""

from mlkube.deploy.cli import main

__all__ = ["main"]
