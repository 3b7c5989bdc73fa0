"""The exception classes of ``axelera.runtime``, under the same names.

``ConnectionError`` and ``NotImplemented`` deliberately shadow the builtins, as
they do in the real module; import them qualified.
"""

from __future__ import annotations

import builtins


class Error(builtins.Exception):
    """Base class of the emulator's runtime exceptions."""


class ConnectionError(Error):
    """Device connection failed; check availability with ``list_devices()``."""


class DeviceInUse(Error):
    """The requested AIPU cores are reserved by another process."""


class IncompatibleDevice(Error):
    """The model needs hardware features the device does not have."""


class InternalError(Error):
    """An internal runtime error."""


class InvalidArgument(Error):
    """An invalid parameter: wrong buffers, unknown keyword, released object, ..."""


class InvalidConfiguration(Error):
    """``configure_device()`` received an invalid setting."""


class NotImplemented(Error):
    """A feature the runtime does not implement."""


class Pending(Error):
    """The operation is still in progress."""


class UnknownError(Error):
    """An error the runtime cannot classify."""

