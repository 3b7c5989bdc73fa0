"""Every exception axrun raises, in one tree.

    AxrunError                  base class; ``exit_code`` is what the CLI exits with
    ├── UsageError              bad options or arguments                          (2)
    │   └── ParameterError      a library parameter's value cannot be used (also a
    │                           ValueError); the CLI names the flag instead        (2)
    ├── ModelError              model folder missing, malformed or not runnable   (3)
    ├── CompileError            ``axrun compile`` cannot build the model folder    (3)
    ├── DeviceError             backend, device or ``run()`` failure              (3)
    │   ├── BackendUnavailable  the requested backend cannot be loaded            (3)
    │   └── DeviceBusy          the cores are reserved by another process         (3)
    ├── InputError              one input cannot be read or decoded; becomes an
    │                           error record and the run goes on                  (1)
    ├── PipelineError           an unexpected failure inside the engine           (3)
    ├── OutputError             a results file or annotated copy cannot be written
    │                           (disk full, read-only, no permission)             (4)
    └── CommandError            ``axrun exec`` cannot start its command (127 not found,
                                126 not executable, as shells do)

An interrupted run (SIGINT/SIGTERM) exits with 130.

Foreign exceptions (``axelera.runtime``, ONNX Runtime, OpenCV) are translated into
this tree where they are raised, with ``raise ... from exc``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2
EXIT_MODEL_OR_DEVICE = 3
EXIT_OUTPUT = 4
EXIT_INTERRUPTED = 130


class AxrunError(Exception):
    """Base class of every error axrun raises on purpose."""

    exit_code = EXIT_INPUT_FAILED


class UsageError(AxrunError):
    """An option or argument is invalid."""

    exit_code = EXIT_USAGE


class ParameterError(UsageError, ValueError):
    """A parameter has a value axrun cannot use. ``parameter`` is its name in the
    Python API (``top_k``); the message reads ``top_k must be at least 1 (got 0)``.
    The command line shows the matching flag instead (``--top-k must be ...``)."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter} {problem}")
        self.parameter = parameter
        self.problem = problem


class ModelError(AxrunError):
    """A model folder is missing, malformed, or cannot be executed by this backend."""

    exit_code = EXIT_MODEL_OR_DEVICE


class CompileError(AxrunError):
    """``axrun compile`` cannot turn the given ONNX model into a model folder."""

    exit_code = EXIT_MODEL_OR_DEVICE


class DeviceError(AxrunError):
    """The backend or the device failed (connect, load, or ``run()``)."""

    exit_code = EXIT_MODEL_OR_DEVICE


class BackendUnavailable(DeviceError):
    """The requested backend (e.g. the real ``axelera.runtime``) cannot be loaded."""


class DeviceBusy(DeviceError):
    """The requested AIPU cores are reserved by another process."""


class InputError(AxrunError):
    """One input (image, video, frame) cannot be read or decoded.

    ``kind`` is the error type written into the error record (``"decode"``,
    ``"read"``, ``"not_found"``, ...).
    """

    def __init__(self, message: str, kind: str = "decode") -> None:
        super().__init__(message)
        self.kind = kind


class PipelineError(AxrunError):
    """An unexpected failure inside the engine; ``source`` names the frame concerned."""

    exit_code = EXIT_MODEL_OR_DEVICE

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class OutputError(AxrunError):
    """An output (results file, annotated image or video) cannot be written; the
    message names the file and the system's reason. Records written before stay."""

    exit_code = EXIT_OUTPUT


class CommandError(AxrunError):
    """``axrun exec`` cannot start its command; ``exit_code`` is the shell's for it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
