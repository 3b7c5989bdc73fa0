"""A stand-in for the Voyager SDK's ``axelera.runtime``, as strict as its documentation
(DESIGN.md §2): only the documented objects, methods and keyword arguments, numpy
buffers of exactly the padded shapes, ``TensorInfo`` read from the manifest. It
computes with axrun's emulator underneath, but axrun sees a module named
``axelera.runtime`` that is not the emulator: ``--backend metis`` takes the real
backend's path through axrun (no emulator-only attribute is there to lean on).

``install(monkeypatch)`` puts it in ``sys.modules``; ``tensor_changes`` makes
``Model.inputs()``/``outputs()`` differ from the manifest, as a runtime that read
another manifest would.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from typing import Any

import numpy as np

from axrun import emulator
from axrun.runtime import DEVICE_SETTINGS, EXCEPTION_NAMES

INSTANCE_FLAGS = ("aipu_cores", "num_sub_devices", "double_buffer", "input_dmabuf",
                  "output_dmabuf", "device_profiling", "host_profiling", "elf_in_ddr")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """The documented fields, nothing else."""

    shape: tuple[int, ...]
    unpadded_shape: tuple[int, ...]
    padding: list[tuple[int, int]]
    scale: float
    zero_point: int
    dtype: Any
    name: str
    size: int


def _info(t: Any, changes: dict[str, Any]) -> TensorInfo:
    info = TensorInfo(shape=tuple(t.shape), unpadded_shape=tuple(t.unpadded_shape),
                      padding=list(t.padding), scale=t.scale, zero_point=t.zero_point,
                      dtype=np.int8, name=t.name, size=t.size)
    return dataclasses.replace(info, **changes)


def module(tensor_changes: dict[tuple[str, int], dict[str, Any]] | None = None,
           calls: list[str] | None = None) -> types.ModuleType:
    """The stand-in module. ``tensor_changes``: ``{("output", 0): {"scale": 0.5}}``;
    ``calls``: a list that receives the name of each method called."""
    changes = tensor_changes or {}
    log = calls if calls is not None else []

    class Object:
        def __init__(self, inner: Any, parent: Any) -> None:
            self._inner, self.context = inner, parent

        def release(self) -> None:
            log.append(f"{type(self).__name__}.release")
            self._inner.release()

    class Context(Object):
        def __init__(self) -> None:
            super().__init__(emulator.Context(), None)
            self.context = self

        def __enter__(self) -> Context:
            return self

        def __exit__(self, *exc: object) -> None:
            self.release()

        def list_devices(self) -> list[Any]:
            log.append("list_devices")
            return self._inner.list_devices()

        def device_connect(self, device: Any = None, num_sub_devices: int = 1) -> Connection:
            log.append("device_connect")
            return Connection(self._inner.device_connect(device=device,
                                                         num_sub_devices=num_sub_devices), self)

        def load_model(self, path: str) -> Model:
            log.append("load_model")
            if not isinstance(path, str):
                raise TypeError(f"load_model takes a str path, not {type(path).__name__}")
            return Model(self._inner.load_model(path), self)

        def configure_device(self, device: Any, **props: Any) -> bool:
            log.append("configure_device")
            unknown = set(props) - set(DEVICE_SETTINGS)
            if unknown:
                raise emulator.InvalidConfiguration(f"unknown properties {sorted(unknown)}")
            return bool(self._inner.configure_device(device, **props))

        def device_ready(self, device: Any) -> bool:
            log.append("device_ready")
            return bool(self._inner.device_ready(device))

        def read_device_configuration(self, device: Any) -> dict[str, str]:
            return dict(self._inner.read_device_configuration(device))

    class Model(Object):
        def inputs(self) -> list[TensorInfo]:
            return [_info(t, changes.get(("input", i), {}))
                    for i, t in enumerate(self._inner.inputs())]

        def outputs(self) -> list[TensorInfo]:
            return [_info(t, changes.get(("output", i), {}))
                    for i, t in enumerate(self._inner.outputs())]

    class Connection(Object):
        def load_model_instance(self, model: Model, **flags: Any) -> ModelInstance:
            log.append("load_model_instance")
            unknown = set(flags) - set(INSTANCE_FLAGS)
            if unknown:
                raise TypeError(f"load_model_instance() got unexpected keyword arguments "
                                f"{sorted(unknown)}")
            return ModelInstance(self._inner.load_model_instance(model._inner, **flags), self)

    class ModelInstance(Object):
        def run(self, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> None:
            if not isinstance(inputs, list) or not isinstance(outputs, list):
                raise TypeError("run() takes two lists of numpy arrays")
            self._inner.run(inputs, outputs)

    api = types.ModuleType("axelera.runtime")
    for cls in (Context, Model, Connection, ModelInstance):
        setattr(api, cls.__name__, cls)
    api.TensorInfo = TensorInfo  # type: ignore[attr-defined]
    for name in EXCEPTION_NAMES:
        setattr(api, name, getattr(emulator, name))
    return api


def install(monkeypatch: Any, **kw: Any) -> types.ModuleType:
    """Make ``import axelera.runtime`` give the stand-in (for this test)."""
    api = module(**kw)
    package = types.ModuleType("axelera")
    package.runtime = api  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "axelera", package)
    monkeypatch.setitem(sys.modules, "axelera.runtime", api)
    return api
