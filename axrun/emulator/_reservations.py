"""Cross-process reservation of emulated AIPU cores.

Each core of each emulated device is a lock file in a state directory; a process
holds a core while it holds an exclusive ``flock`` on that file. The kernel drops
the lock when the holding file descriptor closes, including when the process dies
by SIGKILL, so there are no stale reservations. The holder writes its pid and
command line into the file so that others can say who holds the core.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from axrun.runtime import CORES_PER_DEVICE


def state_dir() -> Path:
    """Where the lock files live (``AXRUN_EMULATOR_STATE_DIR`` overrides)."""
    env = os.environ.get("AXRUN_EMULATOR_STATE_DIR")
    if env:
        path = Path(env)
    else:
        uid = os.getuid() if hasattr(os, "getuid") else 0
        path = Path(tempfile.gettempdir()) / f"axrun-emulator-{uid}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _core_file(device: int, core: int) -> Path:
    return state_dir() / f"device{device}.core{core}.lock"


def _describe_self() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    cmd = " ".join(sys.argv)[:200] or sys.executable
    return f"pid {os.getpid()} ({user}: {cmd})"


@dataclass
class CoreLock:
    """One held core: the open file descriptor is the reservation."""

    device: int
    core: int
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _try_lock(device: int, core: int) -> CoreLock | None:
    fd = os.open(_core_file(device, core), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, _describe_self().encode(), 0)
    return CoreLock(device, core, fd)


def holder(device: int, core: int) -> str:
    """Who holds a core, as its holder wrote it (best effort)."""
    try:
        return _core_file(device, core).read_text(errors="replace").strip() or "unknown process"
    except OSError:
        return "unknown process"


def is_free(device: int, core: int) -> bool:
    """Whether a core is free right now (probes with a shared lock)."""
    fd = os.open(_core_file(device, core), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the probe lock, if taken
    return True


def reserve(device: int, count: int, attempts: int = 3) -> list[CoreLock] | None:
    """Reserve ``count`` cores of ``device``; None if fewer are free.

    Retries briefly because a concurrent :func:`is_free` probe holds a core for a
    few microseconds.
    """
    for attempt in range(attempts):
        held: list[CoreLock] = []
        for core in range(CORES_PER_DEVICE):
            lock = _try_lock(device, core)
            if lock is not None:
                held.append(lock)
                if len(held) == count:
                    return held
        for lock in held:
            lock.release()
        if attempt + 1 < attempts:
            time.sleep(0.01)
    return None
