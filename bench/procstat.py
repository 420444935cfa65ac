"""Reading a process tree's CPU time and memory from /proc (Linux only).

``/proc/<pid>/stat`` fields 14 and 15 (utime, stime) count the clock ticks all threads of one
process spent in user and kernel mode; children are separate processes, so a tree's CPU time is
the sum over the live tree (children's ``cutime`` only appears after they are reaped).
"""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``task/*/children``, else by scanning every ``ppid``)."""
    found: list[int] = []
    tasks = list(Path(f"/proc/{pid}/task").glob("*"))
    if tasks and (tasks[0] / "children").exists():
        for task in tasks:
            try:
                found.extend(int(c) for c in (task / "children").read_text().split())
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        return found
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (bounded walk: at most 4,096 processes)."""
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 4096:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    ticks = 0
    for p in tree(pid):
        fields = _stat_fields(p)
        if fields is not None:
            # After the ")" the fields restart at 3 (state), so utime (14) is index 11.
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def main_thread_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the main threads of ``pid`` and its live descendants (for the
    gateway: its event loops; the rest is the SQLite writer thread and other helper threads)."""
    ticks = 0
    for p in tree(pid):
        try:
            raw = Path(f"/proc/{p}/task/{p}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """``VmRSS`` (or ``VmHWM``, the peak) of ``pid`` and its live descendants, in bytes."""
    total = 0
    for p in tree(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for line in lines:
            if line.startswith(field + ":"):
                total += int(line.split()[1]) * 1024
    return total


def status_value(pid: int, field: str) -> int | None:
    """One number from ``/proc/<pid>/status`` (``Threads``, or a ``Vm*`` size in kB) of ``pid``
    alone; None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def open_fds(pid: int) -> int | None:
    """Open file descriptors of ``pid`` alone (entries of ``/proc/<pid>/fd``)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK
