"""Runtime backends: the real ``axelera.runtime`` or axrun's emulator, behind one API.

Both expose the same object model (``Context`` → ``Model``/``Connection`` →
``ModelInstance``); everything above this module uses that model and cannot tell
them apart. This is also the one place where the backend's exceptions become
axrun's (:mod:`axrun.errors`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from axrun.errors import (
    AxrunError,
    BackendUnavailable,
    DeviceBusy,
    DeviceError,
    ModelError,
    UsageError,
)

BACKEND_CHOICES = ("auto", "metis", "emulator")
# AIPU cores on one Metis device (``subdevice_count`` in the runtime's device info): a
# fact of the hardware, which the engine plans with and the emulator models.
CORES_PER_DEVICE = 4
SDK_HINT = (
    "axelera.runtime is not importable: it ships with Axelera's Voyager SDK "
    "(https://github.com/axelera-ai-hub/voyager-sdk); install the SDK and activate its "
    "virtual environment, or use --backend emulator"
)
EXCEPTION_NAMES = (
    "ConnectionError",
    "DeviceInUse",
    "IncompatibleDevice",
    "InternalError",
    "InvalidArgument",
    "InvalidConfiguration",
    "NotImplemented",
    "Pending",
    "UnknownError",
)
# Besides those, the Voyager SDK's own code expects RuntimeError (from list_devices,
# load_model) and OSError (from Context() when no driver is loaded): they too become
# DeviceErrors (exit 3) with a message, never a traceback.
UNDOCUMENTED_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, OSError)
# The device settings Context.configure_device() takes (Voyager SDK documentation):
# DDR size in bytes (default 0x40000000), clock in MHz (default 800) for the device or
# per core, and the per-core MVM utilisation in percent (default 100; the SDK limits
# some models on M.2 boards, e.g. 57 % for YOLOv8-L).
DEVICE_SETTINGS = ("ddr_size", "clock_profile",
                   *(f"{k}_{i}" for k in ("clock_profile_core", "mvm_utilisation_core")
                     for i in range(CORES_PER_DEVICE)))


@dataclass(frozen=True)
class DeviceStatus:
    """One device as ``axrun devices`` shows it (``cores_free`` None when unknown)."""

    name: str
    cores: int
    cores_free: int | None
    in_use_by: str
    board_type: str
    firmware_version: str


@dataclass(frozen=True)
class Backend:
    """A loaded backend: ``api`` is the ``axelera.runtime``-compatible module."""

    name: str
    api: ModuleType

    @property
    def emulated(self) -> bool:
        return self.name == "emulator"

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """What a call into the backend may raise: the documented exception classes, and
        the two the SDK's own code also expects (:data:`UNDOCUMENTED_ERRORS`); from the
        real library, any exception (a binding's ``TypeError``, say), so that every one
        ends the run with a message, the device released."""
        if not self.emulated:
            return (Exception,)
        return tuple(
            cls for n in EXCEPTION_NAMES
            if isinstance(cls := getattr(self.api, n, None), type)
            and issubclass(cls, BaseException)
        ) + UNDOCUMENTED_ERRORS

    def settings(self) -> dict[str, Any]:
        """What shapes emulated figures (empty for real hardware)."""
        if not self.emulated:
            return {}
        s = self.api.EmulatorSettings.from_env()
        return {"devices": s.devices, "latency_ms": s.latency_ms, "compute": s.compute,
                "threads": s.threads}

    def describe(self) -> str:
        if not self.emulated:
            return "metis (axelera.runtime)"
        s = self.settings()
        timing = f"latency {s['latency_ms']:g} ms" if s["latency_ms"] else "no added latency"
        compute = "compute on" if s["compute"] else "compute off"
        return f"emulator ({s['devices']} device(s), {timing}, {compute})"

    @contextlib.contextmanager
    def translating(self, doing: str, model_error: bool = False) -> Iterator[None]:
        """Turn this backend's exceptions into axrun's, prefixed with what was being done."""
        try:
            yield
        except AxrunError:
            raise
        except self.errors as exc:
            raise translate(exc, doing, model_error) from exc

    def context(self) -> Any:
        """A new ``Context`` (call ``release()`` or use ``with``)."""
        with self.translating("opening the runtime"):
            return self.api.Context()

    def list_devices(self) -> list[DeviceStatus]:
        """The devices this backend sees, with their free cores where known."""
        with self.translating("listing devices"), self.api.Context() as ctx:
            infos = ctx.list_devices()
        out = []
        for info in infos:
            cores = int(getattr(info, "subdevice_count", CORES_PER_DEVICE))
            free = getattr(info, "cores_free", None) if self.emulated else None
            board = getattr(info, "board_type", "")
            out.append(DeviceStatus(
                name=str(info.name),
                cores=cores,
                cores_free=free,
                in_use_by=str(getattr(info, "in_use_by", "") or ""),
                board_type=getattr(board, "name", str(board)),
                firmware_version=str(getattr(info, "firmware_version", "") or ""),
            ))
        return out


def translate(exc: BaseException, doing: str, model_error: bool = False) -> Exception:
    """The axrun exception for a backend exception."""
    name = type(exc).__name__
    message = f"{doing}: {exc}" if doing else str(exc)
    if name == "DeviceInUse":
        if f"pid {os.getpid()} " in message:  # the holder is this process
            return DeviceBusy(message + " (an engine or model this program opened still "
                              "holds them: close it first, or use fewer aipu_cores in each)")
        return DeviceBusy(message + " (wait for it to finish, or pick other devices)")
    if model_error or name == "NotImplemented":
        return ModelError(message)
    return DeviceError(f"{message} [{name}]")


def _is_axrun_shim(module: ModuleType) -> bool:
    return bool(getattr(module, "__axrun_emulator__", False))


def load_backend(choice: str | None = None) -> Backend:
    """Load a backend: ``auto`` (the default, or ``AXRUN_BACKEND``), ``metis`` or ``emulator``.

    ``auto`` uses the real ``axelera.runtime`` when it imports, else the emulator.

    Raises:
        UsageError: an unknown choice.
        BackendUnavailable: ``metis`` requested but the SDK is not importable.
    """
    choice = (choice or os.environ.get("AXRUN_BACKEND") or "auto").strip().lower()
    if choice not in BACKEND_CHOICES:
        raise UsageError(f"unknown backend {choice!r}; choose {', '.join(BACKEND_CHOICES)}")
    if choice in ("auto", "metis"):
        try:
            api = importlib.import_module("axelera.runtime")
        except ImportError as exc:
            if choice == "metis":
                raise BackendUnavailable(SDK_HINT) from exc
        else:
            if not _is_axrun_shim(api):
                return Backend("metis", api)
            if choice == "metis":
                raise BackendUnavailable(
                    "axelera.runtime here is axrun's emulator shim (under `axrun exec`), "
                    "not the Voyager SDK"
                )
    from axrun import emulator

    return Backend("emulator", emulator)
