"""A step (what it does, what to look at when it fails) and the runner that runs a plan of them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deploy.context import Ctx
from deploy.helm import HelmError
from deploy.shell import CommandError, StepFailed


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    action: Callable[[Ctx], None]
    # The command that shows what went wrong, formatted with the context (see ``Ctx.fmt``).
    look: str = ""


FailureHook = Callable[[Ctx, Step], None]


def run_steps(steps: Sequence[Step], ctx: Ctx, on_failure: FailureHook | None = None) -> int:
    """Run ``steps`` in order and stop at the first failure, after calling ``on_failure`` (the
    e2e test dumps its diagnostics there). Returns the exit code."""
    total = len(steps)
    for index, step in enumerate(steps, start=1):
        ctx.console.header(index, total, step.title)
        started = time.monotonic()
        try:
            step.action(ctx)
        except StepFailed as exc:
            ctx.console.failed(step.title, str(exc), exc.look or ctx.fmt(step.look))
        except (CommandError, HelmError) as exc:
            ctx.console.failed(step.title, str(exc), ctx.fmt(step.look))
        except KeyboardInterrupt:
            ctx.console.failed(step.title, "interrupted", "")
            return 130
        else:
            ctx.console.done(time.monotonic() - started)
            continue
        if on_failure is not None:
            on_failure(ctx, step)
        return 1
    return 0
