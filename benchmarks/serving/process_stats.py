"""What a server has used so far, read from Linux's /proc: CPU time and peak resident memory, summed over its
process and the processes it started (with --workers, the supervisor and its workers)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name, from the state (field 3) on."""
    # The command name, in parentheses, may hold spaces: count the fields after its closing parenthesis.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # a process that has exited meanwhile
                children.setdefault(int(stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    tree = [pid]
    for member in tree:  # grows as it goes: breadth first
        tree += children.get(member, [])
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system time of every thread of the process tree so far."""
    fields = [stat_fields(member) for member in process_tree(pid)]
    return sum(int(f[11]) + int(f[12]) for f in fields) * TICK_S  # utime and stime, fields 14 and 15 of stat


def peak_rss_mib(pid: int) -> float:
    """The sum of each process's peak resident set size (VmHWM) over the tree, in MiB; pages that forked
    processes share count once in each."""
    return sum(_peak_rss_kib(member) for member in process_tree(pid)) / 1024


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")
