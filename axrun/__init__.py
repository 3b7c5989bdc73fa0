"""axrun: batch INT8 inference on Axelera Metis, with a built-in software emulator."""

import os as _os

# Refuse to decode images above 256 megapixels (e.g. a decompression bomb whose header
# claims an enormous size): OpenCV's own default is 1 gigapixel. Set before cv2 loads.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))
# axrun reports unreadable inputs itself, one line each: no OpenCV warnings on top.
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

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
    PipelineError,
    UsageError,
)
from axrun.modelfolder import ModelFolder, TensorSpec, load_model_folder
from axrun.preprocess import Preprocessor, PreprocessRecipe
from axrun.runtime import Backend, load_backend

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
    "PipelineError",
    "PreprocessRecipe",
    "Preprocessor",
    "TensorSpec",
    "UsageError",
    "__version__",
    "load_backend",
    "load_model_folder",
]
