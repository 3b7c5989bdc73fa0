"""A software Metis: the ``axelera.runtime`` API, computed with ONNX Runtime.

Same classes, methods, keyword arguments and exceptions as the real module, and the
same byte contract (int8, NHWC, padded). Settings come from the environment when a
:class:`Context` is created:

``AXRUN_EMULATOR_DEVICES``     number of devices, 4 cores each (default 1)
``AXRUN_EMULATOR_LATENCY_MS``  minimum time of one inference per ``run()`` (default 0)
``AXRUN_EMULATOR_COMPUTE``     ``0`` skips the network; outputs hold the zero point
``AXRUN_EMULATOR_THREADS``     ONNX Runtime intra-op threads per instance (default 1)
``AXRUN_EMULATOR_STATE_DIR``   where core reservations live (default: a temp folder)
``AXRUN_EMULATOR_FAIL_AFTER``  fault injection: ``run()`` raises InternalError after
                               this many calls in the process (for testing failure paths)
"""

from axrun.emulator._exceptions import (
    ConnectionError,
    DeviceInUse,
    Error,
    IncompatibleDevice,
    InternalError,
    InvalidArgument,
    InvalidConfiguration,
    NotImplemented,
    Pending,
    UnknownError,
)
from axrun.emulator._runtime import (
    EMULATOR_FORMAT,
    BoardType,
    Connection,
    Context,
    DeviceInfo,
    EmulatorSettings,
    Model,
    ModelInstance,
    Object,
    TensorInfo,
)

__all__ = [
    "EMULATOR_FORMAT",
    "BoardType",
    "Connection",
    "ConnectionError",
    "Context",
    "DeviceInUse",
    "DeviceInfo",
    "EmulatorSettings",
    "Error",
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
