"""axrun: batch INT8 inference on Axelera Metis, with a built-in software emulator."""

from axrun._version import __version__
from axrun.errors import (
    AxrunError,
    BackendUnavailable,
    CompileError,
    DeviceBusy,
    DeviceError,
    InputError,
    Interrupted,
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
    "CompileError",
    "DeviceBusy",
    "DeviceError",
    "InputError",
    "Interrupted",
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
