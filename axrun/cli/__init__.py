"""The ``axrun`` command line: a thin layer over the library.

:func:`main` imports the application itself, with SIGINT and SIGTERM blocked while
the heavy dependencies load (OpenCV, ONNX Runtime: about half a second): an interrupt
inside an extension module's initialisation surfaced as a traceback (``ImportError:
initialization failed``), one inside an import's clean-up was lost. A signal that
came meanwhile ends the process with status 130 and one line once they are loaded.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from axrun.cli.commands import app

__all__ = ["STARTED", "app", "main"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

STARTED = time.monotonic()  # when the command line started, for the start-up time


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
    def encoding(self) -> str:  # type: ignore[override]  # typeshed: writable; io: read-only
        return getattr(self._stream, "encoding", None) or "utf-8"


MAX_IMAGE_PIXELS = 1 << 28


def main() -> None:
    """Console-script entry point."""
    if sys.stderr is not None:
        sys.stderr = _Diagnostics(sys.stderr)
    # Refuse to decode images above 256 megapixels (e.g. a decompression bomb whose
    # header claims an enormous size; OpenCV's own cap is 1 gigapixel), and no OpenCV
    # warnings on top of axrun's own one line per unreadable input. Read by OpenCV
    # when it loads: set before. The command line's choice, not the library's.
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    # While the heavy dependencies load, SIGINT and SIGTERM wait (see the docstring).
    _mask(signal.SIG_BLOCK)
    try:
        from axrun.cli.commands import main as run
        _preload()
    except BaseException:
        _mask(signal.SIG_UNBLOCK)
        raise
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM is Ctrl-C from here on
    try:
        _mask(signal.SIG_UNBLOCK)  # a signal that came meanwhile is raised here
        run()
    except KeyboardInterrupt:  # outside a command's own handling
        _exit_interrupted(say=True)
    except SystemExit as exc:
        if exc.code == 130:  # typer turns an interrupt while it sets up into a silent 130
            cause = exc.__context__.__cause__ if exc.__context__ else None
            _exit_interrupted(say=isinstance(cause, KeyboardInterrupt))
        raise


def _exit_interrupted(say: bool) -> None:
    """End with status 130. Not by sys.exit: on CPython 3.11 an interrupt that landed
    inside eval() (typer reads the commands' annotations with it) makes the
    interpreter end itself by SIGINT on the way out (status -2, and not a word) even
    once handled. Records and devices are closed by then (the commands do it)."""
    if say:
        sys.stderr.write("interrupted\n")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(130)


def _mask(how: int) -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(how, _STOP_SIGNALS)


def _preload() -> None:
    """Import what every run loads later (OpenCV, ONNX Runtime) while signals wait.
    PyAV is left to the first annotated video: it adds 16 MB to every process, and
    during a run a signal only asks the run to stop (nothing is raised in an import)."""
    import cv2  # noqa: F401
    import onnxruntime  # noqa: F401


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def __getattr__(name: str) -> Any:
    if name == "app":
        from axrun.cli.commands import app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
