"""Planning and opening the device side: ``cores // batch`` instances per device.

:func:`open_session` creates one Context, loads the model, and for every instance
one Connection + ModelInstance. :class:`DeviceSession` owns them and releases them
all (through the Context) on :meth:`DeviceSession.close`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from axrun.errors import DeviceBusy, DeviceError, ModelError, ParameterError, UsageError
from axrun.modelfolder import ModelFolder
from axrun.params import choice, flag, integer
from axrun.runtime import CORES_PER_DEVICE, DEVICE_SETTINGS, Backend

log = logging.getLogger("axrun")
DECODE_MODES = ("reduced", "full")

CONNECT_RETRY_S = 3.0  # how long a plan that got only part of its cores tries again
# Host threads beyond this many per CPU only contend for the GIL (thousands livelocked
# the process, signals included).
MAX_THREADS_PER_CPU = 4


@dataclass(frozen=True)
class EngineConfig:
    """How to use the device and the host.

    ``aipu_cores``: cores to use per device (``cores // batch`` instances each).
    ``devices``: indices or names (or a string as :func:`parse_devices` reads it:
    ``"0,1"``, ``"all"``); ``None`` for all. ``decode_threads``: threads
    doing host work (decode + preprocess, postprocess), the caller's own thread among
    them when it can help (see :meth:`Pipeline.run`); ``None``: the number of CPUs;
    at most :data:`MAX_THREADS_PER_CPU` per CPU.
    ``queue_depth``: jobs queued per instance beyond those on the device.
    ``device_config``: settings given to ``Context.configure_device()`` for each chosen
    device before connecting (:data:`~axrun.runtime.DEVICE_SETTINGS`: clock in MHz,
    MVM utilisation in percent, DDR size in bytes), over the model's own
    (``axrun.json`` ``device_config``).
    ``decode``: ``reduced`` (default) decodes a JPEG at 1/2, 1/4 or 1/8 scale when the
    preprocessing shrinks it at least that much (video frames are converted from YUV
    at the size needed), ``full`` always at full size. Images kept for the caller
    (``keep_images``) are decoded again at full size: the results do not change.
    """

    aipu_cores: int = CORES_PER_DEVICE
    devices: tuple[int | str, ...] | None = None
    double_buffer: bool = True
    decode_threads: int | None = None
    queue_depth: int = 1
    device_config: dict[str, int] | None = None
    decode: str = "reduced"

    def __post_init__(self) -> None:
        choice("decode", self.decode, DECODE_MODES)
        integer("aipu_cores", self.aipu_cores)
        flag("double_buffer", self.double_buffer)
        if self.decode_threads is not None:
            integer("decode_threads", self.decode_threads)
        integer("queue_depth", self.queue_depth)
        for key, value in (self.device_config or {}).items():
            if key not in DEVICE_SETTINGS:
                raise ParameterError("device_config", f"has an unknown setting {key!r} "
                                     f"(known: {', '.join(DEVICE_SETTINGS)})")
            integer("device_config", value, 0)
        if isinstance(self.devices, str):  # "metis-0:1:0" is one device, not 11
            object.__setattr__(self, "devices", parse_devices(self.devices))
        if not 1 <= self.aipu_cores <= CORES_PER_DEVICE:
            raise ParameterError("aipu_cores", f"must be 1-{CORES_PER_DEVICE}, not "
                                 f"{self.aipu_cores}")
        most = MAX_THREADS_PER_CPU * (os.cpu_count() or 1)
        if self.decode_threads is not None and not 1 <= self.decode_threads <= most:
            raise ParameterError("decode_threads", f"must be 1-{most} ({MAX_THREADS_PER_CPU} "
                                 f"per CPU), not {self.decode_threads}")
        if self.queue_depth < 1:
            raise ParameterError("queue_depth", f"must be at least 1, not {self.queue_depth}")

    @property
    def threads(self) -> int:
        return self.decode_threads or os.cpu_count() or 1


def parse_devices(spec: str | None) -> tuple[int | str, ...] | None:
    """``all``/empty → None; ``0,1`` → indices; names kept as strings.

    Raises:
        UsageError: only separators (``,,``).
    """
    if spec is None or spec.strip().lower() in ("", "all"):
        return None
    out: list[int | str] = []
    for part in spec.split(","):
        part = part.strip()
        if part:
            out.append(int(part) if part.isdigit() else part)
    if not out:
        raise ParameterError("devices", f"{spec!r} names no device; give all, indices (0,1) "
                             "or names (metis-0:1:0)")
    return tuple(out)


@dataclass(frozen=True)
class Plan:
    """Which instances run where."""

    backend: str
    batch: int
    devices: tuple[str, ...]
    instances: tuple[str, ...]  # device name of each instance, in worker order
    cores_per_device: int
    double_buffer: bool

    def describe(self) -> str:
        """One line: ``4 instance(s) × batch 1 on metis-0:1:0 (4 of 4 cores), double
        buffering on``."""
        per = len(self.instances) // max(1, len(self.devices))
        each = " each" if len(self.devices) > 1 else ""
        return (f"{len(self.instances)} instance(s) × batch {self.batch} on "
                f"{', '.join(self.devices)} ({per * self.batch} of {CORES_PER_DEVICE} "
                f"cores{each}), double buffering {'on' if self.double_buffer else 'off'}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "batch": self.batch,
            "devices": list(self.devices),
            "instances": len(self.instances),
            "cores_per_device": self.cores_per_device,
            "double_buffer": self.double_buffer,
        }


class DeviceSession:
    """The opened device side: Context, Model, and one ModelInstance per worker."""

    def __init__(self, backend: Backend, ctx: Any, model: Any, instances: list[Any],
                 plan: Plan) -> None:
        self.backend = backend
        self.ctx = ctx
        self.model = model
        self.instances = instances
        self.plan = plan
        self.input_infos = list(model.inputs())
        self.output_infos = list(model.outputs())

    def close(self) -> None:
        """Release everything (idempotent)."""
        if self.ctx is not None:
            ctx, self.ctx = self.ctx, None
            with self.backend.translating("releasing the device"):
                ctx.release()

    def __enter__(self) -> DeviceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _select_devices(infos: Sequence[Any], wanted: tuple[int | str, ...] | None) -> list[str]:
    names = [str(i.name) for i in infos]
    if not names:
        raise UsageError("no devices found")
    if wanted is None:
        return names
    chosen = []
    for w in wanted:
        if isinstance(w, int):
            if not 0 <= w < len(names):
                raise UsageError(f"no device {w}; present: {', '.join(names)}")
            chosen.append(names[w])
        elif w in names:
            chosen.append(w)
        else:
            raise UsageError(f"no device named {w!r}; present: {', '.join(names)}")
    return list(dict.fromkeys(chosen))


def _connect_all(backend: Backend, ctx: Any, devices: list[str], per_device: int,
                 batch: int) -> list[tuple[str, Any]]:
    """One connection of ``batch`` cores per instance, all or none: when some cores are
    taken by another process part way (two runs started together each got half), the
    ones held are released and the whole plan is tried again after a random pause,
    for up to :data:`CONNECT_RETRY_S`; then :class:`DeviceBusy` names the holder."""
    deadline = time.monotonic() + CONNECT_RETRY_S
    while True:
        held: list[tuple[str, Any]] = []
        try:
            for name in devices:
                for _ in range(per_device):
                    with backend.translating(f"connecting to {name} ({batch} core(s))"):
                        held.append((name, ctx.device_connect(device=name,
                                                              num_sub_devices=batch)))
            return held
        except DeviceBusy:
            for _, conn in held:
                with backend.translating("releasing a connection"):
                    conn.release()
            if not held or time.monotonic() > deadline:
                raise  # the first connection failed: nothing of ours is in the message
            time.sleep(random.uniform(0.02, 0.2))


DEVICE_READY_S = 10.0  # how long a device may take to apply its settings


def _configure(backend: Backend, ctx: Any, name: str, settings: dict[str, int]) -> None:
    """Apply ``settings`` to a device and wait until it says it is ready.

    Raises:
        DeviceError: the runtime refuses them, or the device is not ready in time.
    """
    with backend.translating(f"configuring {name} ({settings})"):
        ctx.configure_device(name, **settings)
        deadline = time.monotonic() + DEVICE_READY_S
        while not ctx.device_ready(name):
            if time.monotonic() > deadline:
                raise DeviceError(f"{name} was not ready {DEVICE_READY_S:g} s after "
                                  f"configure_device({settings})")
            time.sleep(0.05)
    log.info("configured %s: %s", name, settings)


def check_tensor_infos(folder: ModelFolder, inputs: Sequence[Any],
                       outputs: Sequence[Any]) -> None:
    """Compare the runtime's ``TensorInfo`` (what the device will read and write) with
    the manifest axrun quantizes and decodes by: shape, padding, scale, zero point.

    Raises:
        ModelError: naming the tensor and each field that differs.
    """
    for kind, infos, specs in (("input", inputs, folder.manifest.inputs),
                               ("output", outputs, folder.manifest.outputs)):
        if len(infos) != len(specs):
            raise ModelError(f"{folder.model_json}: the runtime reports {len(infos)} {kind}s, "
                             f"manifest.json {len(specs)}")
        for i, (info, spec) in enumerate(zip(infos, specs, strict=True)):
            padding = tuple(tuple(int(v) for v in p) for p in info.padding)
            seen: dict[str, object] = {
                "shape": tuple(int(d) for d in info.shape), "padding": padding,
                "zero_point": int(info.zero_point)}
            wanted: dict[str, object] = {"shape": spec.shape, "padding": spec.padding,
                                         "zero_point": spec.zero_point}
            differ = [f"{k} {seen[k]} (runtime) vs {wanted[k]} (manifest)" for k in seen
                      if seen[k] != wanted[k]]
            if not math.isclose(float(info.scale), spec.scale, rel_tol=1e-6):
                differ.append(f"scale {float(info.scale):g} (runtime) vs {spec.scale:g} "
                              "(manifest)")
            if differ:
                hint = (" — the runtime found no manifest.json beside model.json"
                        if not padding and info.scale == 1 and info.zero_point == 0
                        else "")
                raise ModelError(f"{folder.model_json}: {kind} {i} differs between the runtime "
                                 f"and manifest.json: {'; '.join(differ)}{hint}")


def open_session(backend: Backend, folder: ModelFolder, config: EngineConfig) -> DeviceSession:
    """Load the model and open ``aipu_cores // batch`` instances on each chosen device.

    Raises:
        ModelError: the runtime cannot load the model.
        DeviceBusy: cores are held by another process (the holder is named).
        DeviceError, UsageError: other device or option problems.
    """
    batch = folder.manifest.batch
    if batch > config.aipu_cores:
        raise ParameterError("aipu_cores", f"is {config.aipu_cores}: the model's batch size "
                             f"{batch} needs {batch} cores")
    per_device = config.aipu_cores // batch
    ctx = backend.context()
    try:
        with backend.translating(f"loading {folder.model_json}", model_error=True):
            model = ctx.load_model(str(folder.model_json))
            check_tensor_infos(folder, model.inputs(), model.outputs())
        with backend.translating("listing devices"):
            devices = _select_devices(ctx.list_devices(), config.devices)
        settings = {**(folder.sidecar.device_config if folder.sidecar else {}),
                    **(config.device_config or {})}
        if settings:
            for name in devices:
                _configure(backend, ctx, name, settings)
        connections = _connect_all(backend, ctx, devices, per_device, batch)
        instances = []
        for name, conn in connections:
            with backend.translating(f"loading the model on {name}"):
                instances.append(conn.load_model_instance(
                    model, num_sub_devices=batch, aipu_cores=batch,
                    double_buffer=config.double_buffer,
                ))
        plan = Plan(
            backend=backend.name, batch=batch, devices=tuple(devices),
            instances=tuple(n for n in devices for _ in range(per_device)),
            cores_per_device=per_device * batch, double_buffer=config.double_buffer,
        )
        return DeviceSession(backend, ctx, model, instances, plan)
    except BaseException:
        ctx.release()
        raise
