"""Running commands: the subprocess interface every step goes through, and its errors.

Steps never call ``subprocess`` themselves: they go through :class:`Commands`, so unit tests
replace it with a fake that records every command and answers from a script."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlkube.core.processes import stop_process_group


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def show(argv: Sequence[str]) -> str:
    """A command as the user would type it: the program's base name, shell-quoted."""
    if not argv:
        return ""
    return shlex.join([Path(argv[0]).name, *argv[1:]])


class CommandError(RuntimeError):
    """A command exited non-zero; the message names it and ends with what it printed."""

    def __init__(self, result: Result) -> None:
        self.result = result
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        detail = f":\n{tail}" if tail else " (see its output above)"
        super().__init__(f"`{show(result.argv)}` exited with {result.returncode}{detail}")


class Process(Protocol):
    """A long-running child (a port-forward); ``stop`` ends it and its children."""

    def poll(self) -> int | None: ...

    def stop(self) -> None: ...

    def output(self) -> str: ...


class Commands(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        capture: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run to completion. ``capture=False`` streams the output to the terminal.
        ``check`` raises :class:`CommandError` on a non-zero exit."""
        ...

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Process:
        """Start in the background (its output goes to a log file)."""
        ...


class _Popen:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        stop_process_group(self.proc, grace=5.0)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


class SubprocessCommands:
    """The real thing."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        capture: bool = True,
        input: str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        full_env = {**os.environ, **env} if env else None
        try:
            proc = subprocess.run(
                list(argv),
                capture_output=capture,
                text=True,
                input=input,
                timeout=timeout,
                env=full_env,
                check=False,
            )
        except FileNotFoundError as exc:
            result = Result(tuple(argv), 127, "", f"{argv[0]}: not found ({exc})")
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
            result = Result(tuple(argv), 124, out, f"timed out after {timeout:.0f}s")
        else:
            result = Result(tuple(argv), proc.returncode, proc.stdout or "", proc.stderr or "")
        if check and not result.ok:
            raise CommandError(result)
        return result

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Process:
        log_dir = self.log_dir or Path(tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        log = Path(tempfile.mkstemp(prefix=f"{Path(argv[0]).name}-", suffix=".log", dir=log_dir)[1])
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                list(argv),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env} if env else None,
                start_new_session=True,  # so stop() can end the whole group
            )
        return _Popen(proc, log)


class StepFailed(RuntimeError):
    """A step could not do its job. ``look`` overrides the step's own hint when given."""

    def __init__(self, message: str, look: str | None = None) -> None:
        super().__init__(message)
        self.look = look
