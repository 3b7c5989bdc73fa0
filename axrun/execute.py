"""``axrun exec``: run any program written against ``axelera.runtime`` on the emulator.

The program runs as a child process whose ``PYTHONPATH`` starts with axrun's shim
folder, where ``axelera.runtime`` is the emulator; the emulator's settings go into the
child's environment. Signals are forwarded; the child's exit status is returned.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from axrun.errors import CommandError, UsageError

SHIM = Path(__file__).resolve().parent / "_shim"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)


def real_sdk_present() -> bool:
    """Whether a real ``axelera.runtime`` is importable here (outside ``axrun exec``)."""
    try:
        spec = importlib.util.find_spec("axelera.runtime")
    except (ImportError, ValueError):
        return False
    return spec is not None and SHIM not in Path(spec.origin or "").parents


def child_environment(devices: int | None = None, latency_ms: float | None = None,
                      compute: bool = True, base: dict[str, str] | None = None) -> \
        dict[str, str]:
    """The child's environment: the shim first on ``PYTHONPATH``, this interpreter's
    folder first on ``PATH`` (so ``python`` finds axrun), emulator settings."""
    if devices is not None and devices < 1:
        raise UsageError("--devices must be at least 1")
    if latency_ms is not None and latency_ms < 0:
        raise UsageError("--latency-ms must be 0 or more")
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SHIM), env.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join(
        p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p)
    if devices is not None:
        env["AXRUN_EMULATOR_DEVICES"] = str(devices)
    if latency_ms is not None:
        env["AXRUN_EMULATOR_LATENCY_MS"] = str(latency_ms)
    if not compute:
        env["AXRUN_EMULATOR_COMPUTE"] = "0"
    return env


NOT_FOUND = 127  # the shell's codes for a command that cannot be found or run
NOT_EXECUTABLE = 126


def run(command: Sequence[str], env: dict[str, str]) -> int:
    """Run ``command`` with signals forwarded; its exit status (128 + n if killed by
    signal n; 127 when not found, 126 when not executable, as shells do)."""
    if not command:
        raise UsageError("nothing to run: axrun exec -- COMMAND [ARGS...]")
    try:
        child = subprocess.Popen(list(command), env=env)
    except FileNotFoundError:
        raise CommandError(f"command not found: {command[0]}", NOT_FOUND) from None
    except PermissionError:
        raise CommandError(f"not executable: {command[0]}", NOT_EXECUTABLE) from None

    def forward(signum: int, frame: object) -> None:
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - code if code < 0 else code
