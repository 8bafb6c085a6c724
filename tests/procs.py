"""What tests see of processes, from /proc: a process's descendants, whether it is alive, the
members of a process group. Used to show that nothing outlives what stopped it."""

from __future__ import annotations

from pathlib import Path


def _stats() -> dict[int, list[str]]:
    """pid -> the fields of /proc/<pid>/stat after the command name: state, ppid, pgrp..."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    return stats


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
    fields = _stats().get(pid)
    return fields is not None and fields[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid`` (children stay in it when reparented)."""
    return [p for p, fields in _stats().items() if int(fields[2]) == pgid and fields[0] != "Z"]
