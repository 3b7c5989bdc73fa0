"""``axelera.runtime`` under ``axrun exec``: axrun's software Metis (``axrun.emulator``)."""

from axrun.emulator import (
    BoardType,
    Connection,
    ConnectionError,
    Context,
    DeviceInfo,
    DeviceInUse,
    IncompatibleDevice,
    InternalError,
    InvalidArgument,
    InvalidConfiguration,
    Model,
    ModelInstance,
    NotImplemented,
    Object,
    Pending,
    TensorInfo,
    UnknownError,
)

__axrun_emulator__ = True

__all__ = [
    "BoardType",
    "Connection",
    "ConnectionError",
    "Context",
    "DeviceInUse",
    "DeviceInfo",
    "IncompatibleDevice",
    "InternalError",
    "InvalidArgument",
    "InvalidConfiguration",
    "Model",
    "ModelInstance",
    "NotImplemented",
    "Object",
    "Pending",
    "TensorInfo",
    "UnknownError",
]
