"""axrun: batch INT8 inference on Axelera Metis, with a built-in software emulator."""

import os as _os

# Refuse to decode images above 256 megapixels (e.g. a decompression bomb whose header
# claims an enormous size): OpenCV's own default is 1 gigapixel. Set before cv2 loads.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))
# axrun reports unreadable inputs itself, one line each: no OpenCV warnings on top.
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from axrun._version import __version__
from axrun.errors import (
    AxrunError,
    BackendUnavailable,
    CommandError,
    CompileError,
    DeviceBusy,
    DeviceError,
    InputError,
    ModelError,
    OutputError,
    PipelineError,
    UsageError,
)

# The rest loads OpenCV or ONNX Runtime: imported when first used (PEP 562), so that
# `import axrun` and the command line start light (and a Ctrl-C while they load is
# handled by the command line, not shown as a traceback).
_LAZY = {
    "ModelFolder": "axrun.modelfolder", "TensorSpec": "axrun.modelfolder",
    "load_model_folder": "axrun.modelfolder", "Preprocessor": "axrun.preprocess",
    "PreprocessRecipe": "axrun.preprocess", "Backend": "axrun.runtime",
    "load_backend": "axrun.runtime",
}

if _TYPE_CHECKING:
    from axrun.modelfolder import ModelFolder, TensorSpec, load_model_folder
    from axrun.preprocess import Preprocessor, PreprocessRecipe
    from axrun.runtime import Backend, load_backend


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'axrun' has no attribute {name!r}")


__all__ = [
    "AxrunError",
    "Backend",
    "BackendUnavailable",
    "CommandError",
    "CompileError",
    "DeviceBusy",
    "DeviceError",
    "InputError",
    "ModelError",
    "ModelFolder",
    "OutputError",
    "PipelineError",
    "PreprocessRecipe",
    "Preprocessor",
    "TensorSpec",
    "UsageError",
    "__version__",
    "load_backend",
    "load_model_folder",
]
