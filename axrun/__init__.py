"""axrun: batch INT8 inference on Axelera Metis, with a built-in software emulator.

    import axrun

    with axrun.load("yolox-nano-coco") as model:   # a bundled model, by name
        for r in model(["a.jpg", "clips/", frame_bgr, jpeg_bytes]):
            print(r.source, r.frame, r.detections.xyxy, r.to_dict())

Importing axrun changes nothing in the process; :func:`tune_process` makes the
process-wide settings the command line makes (faster host work).
"""

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
    ParameterError,
    PipelineError,
    UsageError,
)

# The rest loads OpenCV or ONNX Runtime: imported when first used (PEP 562), so that
# `import axrun` and the command line start light (and a Ctrl-C while they load is
# handled by the command line, not shown as a traceback).
_LAZY = {
    "load": "axrun.model", "Model": "axrun.model",
    "Result": "axrun.results", "Classification": "axrun.results",
    "Detections": "axrun.results", "Tensors": "axrun.results",
    "Engine": "axrun.engine", "EngineConfig": "axrun.engine",
    "Classifier": "axrun.tasks", "Detector": "axrun.tasks", "DetectOptions": "axrun.tasks",
    "make_task": "axrun.tasks", "preprocess_recipe": "axrun.tasks.base",
    "Run": "axrun.run", "RunPolicy": "axrun.run", "RunSummary": "axrun.run",
    "items_from": "axrun.sources", "expand": "axrun.sources", "Item": "axrun.sources",
    "SourceOptions": "axrun.sources",
    "tune_process": "axrun.engine.process",
    "ModelFolder": "axrun.modelfolder", "TensorSpec": "axrun.modelfolder",
    "load_model_folder": "axrun.modelfolder", "Preprocessor": "axrun.preprocess",
    "PreprocessRecipe": "axrun.preprocess", "Backend": "axrun.runtime",
    "load_backend": "axrun.runtime",
}

if _TYPE_CHECKING:
    from axrun.engine import Engine, EngineConfig
    from axrun.engine.process import tune_process
    from axrun.model import Model, load
    from axrun.modelfolder import ModelFolder, TensorSpec, load_model_folder
    from axrun.preprocess import Preprocessor, PreprocessRecipe
    from axrun.results import Classification, Detections, Result, Tensors
    from axrun.run import Run, RunPolicy, RunSummary
    from axrun.runtime import Backend, load_backend
    from axrun.sources import Item, SourceOptions, expand, items_from
    from axrun.tasks import DetectOptions, Detector, make_task
    from axrun.tasks.base import preprocess_recipe
    from axrun.tasks.classify import Classifier


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'axrun' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AxrunError",
    "Backend",
    "BackendUnavailable",
    "Classification",
    "Classifier",
    "CommandError",
    "CompileError",
    "DetectOptions",
    "Detections",
    "Detector",
    "DeviceBusy",
    "DeviceError",
    "Engine",
    "EngineConfig",
    "InputError",
    "Item",
    "Model",
    "ModelError",
    "ModelFolder",
    "OutputError",
    "ParameterError",
    "PipelineError",
    "PreprocessRecipe",
    "Preprocessor",
    "Result",
    "Run",
    "RunPolicy",
    "RunSummary",
    "SourceOptions",
    "TensorSpec",
    "Tensors",
    "UsageError",
    "__version__",
    "expand",
    "items_from",
    "load",
    "load_backend",
    "load_model_folder",
    "make_task",
    "preprocess_recipe",
    "tune_process",
]
