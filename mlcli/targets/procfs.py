"""Processes as Linux's /proc shows them: who a pid is, its process group, and stopping it.

A process is identified by its pid AND its start time (stat field 22), so a pid the kernel
has since given to another program is never mistaken for ours. Servers run in their own
process group (the server and the workers it forks), which is what gets stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

# Children we started, kept so Python reaps them (no zombies, no ResourceWarning) while a
# long-lived parent (a test session, the --no-wait finisher) is still running.
_SPAWNED: list[subprocess.Popen[bytes]] = []


def track_child(proc: subprocess.Popen[bytes]) -> None:
    """Reap `proc` when it exits, though nobody waits for it (a detached server or helper)."""
    _SPAWNED.append(proc)


def tracked_children() -> list[subprocess.Popen[bytes]]:
    """The children passed to `track_child` that have not been reaped yet."""
    _reap()
    return list(_SPAWNED)


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (stat field 22), None if gone."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def process_matches(pid: int, start_time: int | None) -> bool:
    """True when `pid` runs (not a zombie) and is the process that started at `start_time`."""
    _reap()
    if pid <= 0:
        return False
    fields = stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == int(start_time)


def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (the server and any workers it forked)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (children, their children...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, ()))
    return found


def stop_process_group(pid: int, start_time: int | None, *, grace_s: float) -> None:
    """SIGTERM the server's process group (it drains), then SIGKILL what is left after grace.

    Group members outlive a server killed with -9 (orphaned workers still holding the port);
    the kernel never reuses a pid while it names a live group, so they are still ours.
    """
    leader_alive = process_matches(pid, start_time)
    if pid <= 0 or (not leader_alive and not group_members(pid)):
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not process_matches(pid, start_time) and not group_members(pid):
            return
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (process_matches(pid, start_time) or group_members(pid)):
        time.sleep(0.05)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap() -> None:
    for proc in list(_SPAWNED):
        if proc.poll() is not None:
            _SPAWNED.remove(proc)
