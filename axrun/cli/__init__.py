"""The ``axrun`` command line: a thin layer over the library.

:func:`main` imports the application itself, with SIGINT and SIGTERM only noted
while the heavy dependencies load (OpenCV, ONNX Runtime: about half a second): an
interrupt inside an extension module's initialisation would surface as a traceback
(``ImportError: initialization failed``). Noted, it ends the process with status 130
and one line once the imports are done.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from axrun.cli.commands import app

__all__ = ["app", "main"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Diagnostics(io.TextIOBase):
    """stderr for diagnostics only: once its reader has gone away (``2>&1 | head -1``),
    what is left to say is dropped, and the run's own outcome decides the exit status
    (a closed stderr made a complete run exit 1)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream: TextIO | None = stream

    def write(self, text: str) -> int:
        if self._stream is not None:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (BrokenPipeError, ValueError):  # reader gone, or stream closed
                self._stream = None
        return len(text)

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def fileno(self) -> int:
        if self._stream is None:
            raise OSError("stderr has been closed")
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"


def main() -> None:
    """Console-script entry point."""
    if sys.stderr is not None:
        sys.stderr = _Diagnostics(sys.stderr)  # type: ignore[assignment]
    noted: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: noted.append(signum))
                for s in _STOP_SIGNALS}
    try:
        from axrun.cli.commands import main as run
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    # From here on SIGTERM is Ctrl-C, until a run installs its own handling: either
    # ends the command with status 130 and one line (SIGTERM killed it with 143).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if noted:
            raise KeyboardInterrupt
        run()
    except KeyboardInterrupt:  # outside a command's own handling (typer setting up)
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        # Not sys.exit: on CPython 3.11 an interrupt that landed inside eval() (typer
        # reads the commands' annotations with it) makes the interpreter end itself by
        # SIGINT on the way out (status -2) even once handled. Nothing is open yet.
        os._exit(130)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def __getattr__(name: str) -> Any:
    if name == "app":
        from axrun.cli.commands import app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
