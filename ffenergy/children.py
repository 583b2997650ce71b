"""Child processes that live and die with the run (a simulated logger, QEMU, the host-build DUT).

``spawn`` starts a child that the kernel signals (SIGTERM) when its parent dies, however it dies:
Ctrl-C, SIGTERM, kill -9 (Linux ``PR_SET_PDEATHSIG``; elsewhere the parent's own clean-up is all
there is). ``end_stale`` ends what an earlier process of the same run left behind: every process
whose command line names the run's working folder, other than this one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True) if sys.platform == "linux" else None
_prctl = _libc.prctl if _libc is not None else None  # resolved here: the forked child only calls it


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: ask for SIGTERM when the parent goes; exit if it already went."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died between fork and prctl
        os._exit(1)


def spawn(args: Sequence[str], **popen: Any) -> subprocess.Popen:
    """``subprocess.Popen(args, **popen)`` for a child that must not outlive this process."""
    parent = os.getpid()
    return subprocess.Popen(list(args), preexec_fn=lambda: _die_with_parent(parent), **popen)


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stale_children(marker: str | Path) -> list[int]:
    """PIDs (not this process) whose command line contains ``marker``, e.g. a run's working folder."""
    text = str(marker)
    own = os.getpid()
    pids = [int(p.name) for p in Path("/proc").glob("[0-9]*")] if Path("/proc").is_dir() else []
    return [pid for pid in pids if pid != own and text in _command_line(pid)]


def end_stale(marker: str | Path, grace_s: float = 2.0) -> list[int]:
    """End the processes ``stale_children(marker)`` finds (SIGTERM, then SIGKILL); the PIDs ended."""
    pids = stale_children(marker)
    for pid in pids:
        log.warning("ending pid %d left running by an earlier process of this run: %s", pid, _command_line(pid)[:200])
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = next((line for line in _status(pid) if line.startswith("State:")), "")
    return "Z" not in state.split(":", 1)[-1][:3]  # a zombie is gone, only not yet reaped


def _status(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return []
