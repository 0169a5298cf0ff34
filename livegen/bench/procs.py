"""Memory of a process and its children, read from ``/proc`` (Linux) for the soak and fuzz
benchmarks: a show runs in several processes (audio, timing server, style network), and a
leak in any of them ends it, so each is watched by name."""

from __future__ import annotations

import os
from pathlib import Path


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (VmRSS), or None when it is gone or unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(command name, parent pid) from /proc/PID/stat; the name may hold spaces and ')'."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    if len(fields) < 2:
        return None
    return head.partition("(")[2], int(fields[1])


def descendants(pid: int | None = None) -> dict[int, str]:
    """Every living process below ``pid`` (default: this one), as ``{pid: name}``."""
    root = os.getpid() if pid is None else pid
    parents: dict[int, tuple[str, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parents[int(entry)] = st
    out: dict[int, str] = {}
    frontier = {root}
    while frontier:
        nxt = {p for p, (_name, ppid) in parents.items() if ppid in frontier and p not in out}
        for p in nxt:
            out[p] = parents[p][0]
        frontier = nxt
    return out
