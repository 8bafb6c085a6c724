"""What tests see of processes, from /proc: a process's descendants, whether it is alive, the
members of a process group, the processes that name something. Used to show that nothing
outlives what stopped it."""

from __future__ import annotations

from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _stats() -> dict[int, list[str]]:
    return {pid: fields for pid in _pids() if (fields := _stat(pid)) is not None}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children of children too)."""
    parents = {p: int(fields[1]) for p, fields in _stats().items()}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid`` (children stay in it when reparented)."""
    return [p for p, fields in _stats().items() if int(fields[2]) == pgid and fields[0] != "Z"]


def naming(text: str) -> list[int]:
    """Live processes whose command line or environment contains ``text`` (a state directory,
    a port): what a launcher started in sessions of their own, found without its pids."""
    found = []
    for pid in _pids():
        try:
            proc = Path(f"/proc/{pid}")
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in seen and alive(pid):
            found.append(pid)
    return found
