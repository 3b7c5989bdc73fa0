"""The emulated object model: Context → Model / Connection → ModelInstance.

Behaves like ``axelera.runtime`` at the byte level: int8 NHWC padded buffers in
and out, results written in place, double buffering returning results two calls
late. The network itself is computed by ONNX Runtime from the device graph that
``axrun compile`` wrote; a timing model (``AXRUN_EMULATOR_LATENCY_MS``,
``AXRUN_EMULATOR_COMPUTE=0``) lets a benchmark stand in for real hardware.
"""

from __future__ import annotations

import enum
import itertools
import json
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from axrun.emulator import _exceptions as ex
from axrun.emulator import _reservations as reservations
from axrun.runtime import CORES_PER_DEVICE, DEVICE_SETTINGS

EMULATOR_FORMAT = "axrun-emulator"
INSTANCE_FLAGS = (
    "aipu_cores",
    "num_sub_devices",
    "double_buffer",
    "input_dmabuf",
    "output_dmabuf",
    "device_profiling",
    "host_profiling",
    "elf_in_ddr",
)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        raise ex.InvalidConfiguration(f"{name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class EmulatorSettings:
    """Read from the environment when a Context is created."""

    devices: int
    latency_ms: float
    compute: bool
    threads: int
    fail_after: int | None = None
    strict: bool = False  # read inputs only when their result is due (buffer-reuse checks)

    @classmethod
    def from_env(cls) -> EmulatorSettings:
        devices = int(_env_float("AXRUN_EMULATOR_DEVICES", 1))
        if devices < 0:
            raise ex.InvalidConfiguration("AXRUN_EMULATOR_DEVICES must be 0 or more")
        latency = _env_float("AXRUN_EMULATOR_LATENCY_MS", 0.0)
        if latency < 0:
            raise ex.InvalidConfiguration("AXRUN_EMULATOR_LATENCY_MS must be 0 or more")
        compute = os.environ.get("AXRUN_EMULATOR_COMPUTE", "1").strip().lower()
        threads = int(_env_float("AXRUN_EMULATOR_THREADS", 1))
        fail = os.environ.get("AXRUN_EMULATOR_FAIL_AFTER", "").strip()
        return cls(
            devices=devices,
            latency_ms=latency,
            compute=compute not in ("0", "false", "no", "off"),
            threads=max(1, threads),
            fail_after=int(_env_float("AXRUN_EMULATOR_FAIL_AFTER", 0)) if fail else None,
            strict=os.environ.get("AXRUN_EMULATOR_STRICT", "0").strip().lower()
            not in ("0", "false", "no", "off", ""),
        )


class BoardType(enum.Enum):
    alpha_pcie = 0
    alpha_m2 = 1
    pcie = 2
    m2 = 3
    devboard = 4
    sbc = 5
    unknown = 6


@dataclass(frozen=True)
class DeviceInfo:
    """An available device, as ``Context.list_devices()`` reports it."""

    name: str
    subdevice_count: int
    board_type: BoardType = BoardType.pcie
    max_memory: int = 0
    in_use: bool = False
    in_use_by: str = ""
    firmware_version: str = "emulator"
    board_revision: int = 0
    flashed_firmware_version: str = "emulator"
    board_controller_firmware_version: str = "emulator"
    board_controller_board_type: str = "emulator"
    cores_free: int = 0


@dataclass
class TensorInfo:
    """Shape, padding and quantization of one device tensor (NHWC, int8)."""

    shape: tuple[int, ...]
    dtype: DTypeLike = np.int8
    name: str = ""
    padding: list[tuple[int, int]] = field(default_factory=list)
    scale: float = 1.0
    zero_point: int = 0

    @property
    def size(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def unpadded_shape(self) -> tuple[int, ...]:
        return tuple(d - lo - hi for d, (lo, hi) in zip(self.shape, self.padding, strict=True))


_RUNS = itertools.count(1)  # run() calls in this process, for AXRUN_EMULATOR_FAIL_AFTER


def _device_name(index: int) -> str:
    return f"metis-0:{index + 1}:0"


def _busy(device: int) -> tuple[list[int], list[str]]:
    """The cores of a device held by someone, and who holds them."""
    busy = [c for c in range(CORES_PER_DEVICE) if not reservations.is_free(device, c)]
    return busy, sorted({reservations.holder(device, c) for c in busy})


class Object:
    """Base of every runtime object: owned by a Context, released with its parent."""

    def __init__(self, context: Context | None, parent: Object | None) -> None:
        self._context = context
        self._children: list[Object] = []
        self._released = False
        self._lock = threading.Lock()
        if parent is not None:
            parent._children.append(self)

    @property
    def context(self) -> Context:
        assert self._context is not None
        return self._context

    def release(self) -> None:
        """Release this object and all its children."""
        with self._lock:
            if self._released:
                return
            self._released = True
            children, self._children = self._children, []
        for child in reversed(children):
            child.release()
        self._on_release()

    def _on_release(self) -> None:
        pass

    def _check(self) -> None:
        if self._released:
            raise ex.InvalidArgument(f"{type(self).__name__} has been released")


class Context(Object):
    """The root object; create first, release last (or use ``with``)."""

    def __init__(self) -> None:
        super().__init__(None, None)
        self._context = self
        self.settings = EmulatorSettings.from_env()
        self._configured: dict[int, dict[str, str]] = {}  # configure_device() per device

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def list_devices(self) -> list[DeviceInfo]:
        """Every emulated device, with how many of its cores are free right now."""
        self._check()
        out = []
        for d in range(self.settings.devices):
            busy, holders = _busy(d)
            out.append(
                DeviceInfo(
                    name=_device_name(d),
                    subdevice_count=CORES_PER_DEVICE,
                    in_use=bool(busy),
                    in_use_by=", ".join(holders),
                    cores_free=CORES_PER_DEVICE - len(busy),
                )
            )
        return out

    def _device_index(self, device: int | str | DeviceInfo | None) -> int | None:
        if isinstance(device, DeviceInfo):
            device = device.name
        if device is None:
            return None
        names = [_device_name(d) for d in range(self.settings.devices)]
        if isinstance(device, bool) or not isinstance(device, int | str):
            raise ex.InvalidArgument(f"device must be None, an index or a name, not {device!r}")
        if isinstance(device, int):
            if not 0 <= device < len(names):
                raise ex.ConnectionError(f"no device {device}; {len(names)} device(s) present")
            return device
        if device not in names:
            raise ex.ConnectionError(f"no device named {device!r}; present: {', '.join(names)}")
        return names.index(device)

    def device_connect(
        self, device: int | str | DeviceInfo | None = None, num_sub_devices: int = 1, **kwargs: Any
    ) -> Connection:
        """Reserve ``num_sub_devices`` cores on a device, exclusively for this process.

        Further keyword arguments are accepted, as the runtime accepts them (connection
        properties for the device); the emulator keeps them in ``Connection.properties``.
        """
        self._check()
        if not isinstance(num_sub_devices, int) or not 1 <= num_sub_devices <= CORES_PER_DEVICE:
            raise ex.InvalidArgument(
                f"num_sub_devices must be 1-{CORES_PER_DEVICE}, not {num_sub_devices!r}")
        if self.settings.devices == 0:
            raise ex.ConnectionError("no Metis device found (AXRUN_EMULATOR_DEVICES=0)")
        index = self._device_index(device)
        candidates = range(self.settings.devices) if index is None else [index]
        for d in candidates:
            held = reservations.reserve(d, num_sub_devices)
            if held is not None:
                return Connection(self, d, held, kwargs)
        d = candidates[0]
        busy, holders = _busy(d)
        holders = holders or ["unknown process"]
        where = "any device" if index is None else _device_name(d)
        raise ex.DeviceInUse(
            f"{num_sub_devices} core(s) requested but not free on {where}; "
            f"{_device_name(d)} cores {busy} held by {'; '.join(holders)}"
        )

    def load_model(self, path: str | os.PathLike[str]) -> Model:
        """Load a compiled model from its ``model.json``."""
        self._check()
        return Model(self, Path(path))

    def configure_device(self, device: int | str | DeviceInfo, **kwargs: Any) -> bool:
        """Accept the documented device settings (the emulator has no clocks: they are
        kept, and read back by :meth:`read_device_configuration`)."""
        self._check()
        index = self._device_index(device)
        unknown = set(kwargs) - set(DEVICE_SETTINGS)
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ex.InvalidConfiguration(f"unknown device setting(s): {names}")
        self._configured.setdefault(index or 0, {}).update(
            {k: str(v) for k, v in kwargs.items()})
        return True

    def device_ready(self, device: int | str | DeviceInfo) -> bool:
        self._check()
        self._device_index(device)
        return True

    def read_device_configuration(self, device: int | str | DeviceInfo) -> dict[str, str]:
        self._check()
        index = self._device_index(device)
        return {"clock_profile": "800", "backend": "axrun-emulator",
                **self._configured.get(index or 0, {})}


class Model(Object):
    """A compiled model: tensor metadata plus the device graph the emulator executes."""

    def __init__(self, context: Context, path: Path) -> None:
        from axrun.errors import ModelError
        from axrun.modelfolder import read_manifest

        super().__init__(context, context)
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ex.InvalidArgument(f"{path}: model file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ex.InvalidArgument(f"{path}: cannot read model file: {exc}") from exc
        if not isinstance(spec, dict) or spec.get("format") != EMULATOR_FORMAT:
            raise ex.NotImplemented(
                f"{path} is not an axrun emulator model (compiled by the Voyager SDK for "
                "real hardware?); running it needs a Metis device and the Voyager SDK. "
                "The emulator runs model folders made by `axrun compile`."
            )
        graph = spec.get("device_graph")
        if not isinstance(graph, str) or not (path.parent / graph).is_file():
            raise ex.InvalidArgument(f"{path}: 'device_graph' must name an existing ONNX file")
        try:
            manifest = read_manifest(path.parent / "manifest.json")
        except ModelError as exc:
            raise ex.InvalidArgument(str(exc)) from exc
        self.path = path
        self.device_graph = path.parent / graph
        self._inputs = [self._info(t) for t in manifest.inputs]
        self._outputs = [self._info(t) for t in manifest.outputs]
        self.postamble_graph = manifest.postprocess_graph
        self.preamble_graph = manifest.preprocess_graph
        self.input_tensor_layout = "NHWC"

    @staticmethod
    def _info(t: Any) -> TensorInfo:
        return TensorInfo(
            shape=tuple(t.shape), name=t.name, padding=[tuple(p) for p in t.padding],
            scale=t.scale, zero_point=t.zero_point,
        )

    def inputs(self) -> list[TensorInfo]:
        self._check()
        return list(self._inputs)

    def outputs(self) -> list[TensorInfo]:
        self._check()
        return list(self._outputs)


class Connection(Object):
    """Cores reserved on one device; released (and freed for others) with ``release()``."""

    def __init__(self, context: Context, device: int, cores: list[reservations.CoreLock],
                 properties: dict[str, Any] | None = None) -> None:
        super().__init__(context, context)
        self.properties = dict(properties or {})
        self.device_index = device
        self.device_name = _device_name(device)
        self._cores = cores

    @property
    def num_sub_devices(self) -> int:
        return len(self._cores)

    def _on_release(self) -> None:
        for core in self._cores:
            core.release()

    def load_model_instance(self, model: Model, **kwargs: Any) -> ModelInstance:
        """Load ``model`` on this connection's cores (flags as ``axelera.runtime``)."""
        self._check()
        model._check()
        unknown = set(kwargs) - set(INSTANCE_FLAGS)
        if unknown:
            raise ex.InvalidArgument(
                f"unknown keyword argument(s): {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(INSTANCE_FLAGS)}"
            )
        batch = model.inputs()[0].shape[0]
        value = kwargs.get("num_sub_devices", 0)
        if value not in (0, batch):
            raise ex.InvalidArgument(
                f"num_sub_devices={value} does not match the model's batch size {batch}")
        # aipu_cores is the L2 share (1 core = 25 %): at least the batch's cores, and may
        # be more than num_sub_devices, as the runtime allows.
        value = kwargs.get("aipu_cores", 0)
        if value != 0 and not batch <= value <= CORES_PER_DEVICE:
            raise ex.InvalidArgument(
                f"aipu_cores={value} must be {batch}-{CORES_PER_DEVICE} for the model's batch "
                f"size {batch}")
        if batch > self.num_sub_devices:
            raise ex.InvalidArgument(
                f"model batch {batch} needs {batch} cores; this connection has "
                f"{self.num_sub_devices}"
            )
        for key in ("input_dmabuf", "output_dmabuf"):
            if kwargs.get(key):
                raise ex.NotImplemented(f"{key}: the emulator takes numpy arrays only")
        return ModelInstance(self, model, double_buffer=bool(kwargs.get("double_buffer", False)))


class ModelInstance(Object):
    """A model loaded on cores; ``run()`` from one thread only."""

    def __init__(self, connection: Connection, model: Model, double_buffer: bool) -> None:
        super().__init__(connection.context, connection)
        self.model = model
        self.double_buffer = double_buffer
        settings = connection.context.settings
        self._latency_s = settings.latency_ms / 1000.0
        self._compute = settings.compute
        self._fail_after = settings.fail_after
        self._strict = settings.strict
        self._in_infos = model.inputs()
        self._out_infos = model.outputs()
        # Double buffering: (input arrays, or in strict mode the results computed at the
        # call, and the time the device finishes them), oldest first. Set before the
        # session: an instance whose graph fails to load is still released with its
        # connection.
        self._pending: deque[tuple[list[np.ndarray] | None, list[np.ndarray] | None,
                                   float]] = deque()
        self._device_free_at = 0.0
        self._running = threading.Lock()
        self._session: Any = None
        if self._compute:
            self._session = _open_session(model.device_graph, settings.threads)

    def _on_release(self) -> None:
        self._session = None
        self._pending.clear()

    def run(self, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> None:
        """Run one inference; blocks; writes results into ``outputs`` in place.

        With ``double_buffer`` the results written are those of the input passed two
        calls earlier (the first two calls return nothing useful). As documented, the
        inputs are consumed during the call: the caller may refill them as soon as it
        returns. With ``AXRUN_EMULATOR_STRICT=1`` they are read only when their result
        is due, so that a host reusing a buffer whose result is still in flight gets a
        wrong result (what axrun's engine tests check that it never does).
        """
        self._check()
        if not self._running.acquire(blocking=False):
            raise ex.InvalidArgument("ModelInstance.run() called from two threads at once")
        try:
            _check_buffers("input", inputs, self._in_infos, writable=False)
            _check_buffers("output", outputs, self._out_infos, writable=True)
            if self._fail_after is not None and next(_RUNS) > self._fail_after:
                raise ex.InternalError(
                    f"injected fault: AXRUN_EMULATOR_FAIL_AFTER={self._fail_after} runs")
            now = time.perf_counter()
            start = max(now, self._device_free_at)
            self._device_free_at = start + self._latency_s
            if self._strict or not self.double_buffer:
                self._pending.append((list(inputs), None, self._device_free_at))
            else:  # consumed now; the results wait for the call two later
                self._pending.append((None, self._results(inputs), self._device_free_at))
            if self.double_buffer and len(self._pending) <= 2:
                for out, info in zip(outputs, self._out_infos, strict=True):
                    out.fill(info.zero_point)
                return
            due_inputs, results, done_at = self._pending.popleft()
            delay = done_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self._check()  # released while the device was busy
            if due_inputs is not None:  # read only now, at the end of the device time
                results = self._results(due_inputs)
            if results is None:
                for out, info in zip(outputs, self._out_infos, strict=True):
                    out.fill(info.zero_point)
            else:
                for out, res in zip(outputs, results, strict=True):
                    np.copyto(out, res)
        finally:
            self._running.release()

    def _results(self, inputs: list[np.ndarray]) -> list[np.ndarray] | None:
        """The network's outputs for ``inputs``; None in timing mode (no compute)."""
        if not self._compute:
            return None
        session = self._session
        if session is None:
            raise ex.InvalidArgument("ModelInstance was released during run()")
        feed = {info.name: arr for info, arr in zip(self._in_infos, inputs, strict=True)}
        results: list[np.ndarray] = session.run(None, feed)
        return results


def _check_buffers(
    kind: str, arrays: Any, infos: list[TensorInfo], *, writable: bool
) -> None:
    if not isinstance(arrays, list | tuple):
        raise ex.InvalidArgument(f"{kind}s must be a list of numpy arrays")
    if len(arrays) != len(infos):
        raise ex.InvalidArgument(f"expected {len(infos)} {kind} buffer(s), got {len(arrays)}")
    for i, (arr, info) in enumerate(zip(arrays, infos, strict=True)):
        if problem := _buffer_problem(arr, info, writable):
            raise ex.InvalidArgument(f"{kind} {i} ({info.name!r}): {problem}")


def _buffer_problem(arr: Any, info: TensorInfo, writable: bool) -> str | None:
    if not isinstance(arr, np.ndarray):
        return f"expected a numpy array, got {type(arr).__name__}"
    if arr.dtype != np.int8:
        return f"dtype {arr.dtype} is not int8"
    if arr.shape != info.shape:
        return f"shape {arr.shape} is not the padded {info.shape}"
    flags = arr.flags
    if not flags.c_contiguous:
        return "buffer is not C-contiguous"
    if writable and not flags.writeable:
        return "buffer is read-only"
    return None


def _open_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ex.InvalidArgument(f"{path}: cannot load device graph: {exc}") from exc
