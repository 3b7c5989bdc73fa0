"""Reading files with precise errors and bounded memory; writing files atomically
(a temporary sibling, then one rename)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from axrun.errors import InputError

_CHUNK = 1 << 20
# What an input that is not a regular file (a pipe, a device, a URL) may hold at most:
# far above any real image, and bounds memory for an endless one such as /dev/zero.
MAX_READ_BYTES = 1 << 30


def umask() -> int:
    """The process's file-creation mask."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once (readers see the old file or the new one),
    creating parent folders; permissions as a plain ``open()`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_bytes(path: str | Path, max_bytes: int | None = None) -> bytes:
    """A file's bytes, with read failures as :class:`InputError` of a precise kind.
    With ``max_bytes``, reading stops past that many (memory stays bounded for an
    endless input such as ``/dev/zero``) and the input fails as ``too_large``."""
    try:
        with open(path, "rb") as f:
            if max_bytes is None:
                return f.read()
            return read_capped(f, max_bytes, str(path))
    except FileNotFoundError:
        kind = "broken_symlink" if os.path.islink(path) else "not_found"
        raise InputError(f"{path}: no such file", kind) from None
    except PermissionError:
        raise InputError(f"{path}: permission denied", "permission") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory", "read") from None
    except OSError as exc:
        kind = "symlink_loop" if exc.errno == errno.ELOOP else "read"
        raise InputError(f"{path}: cannot read ({exc.strerror})", kind) from None
    except ValueError:  # a NUL byte in the name
        raise InputError(f"{path!r}: not a valid file name", "not_found") from None


def read_capped(stream: BinaryIO, max_bytes: int, name: str) -> bytes:
    """Everything ``stream`` gives, in chunks, but never more than ``max_bytes``.

    Raises:
        InputError: ``too_large`` when the stream has more.
    """
    data = bytearray()
    while chunk := stream.read(min(_CHUNK, max_bytes + 1 - len(data))):
        data += chunk
        if len(data) > max_bytes:
            raise InputError(f"{name}: more than {format_bytes(max_bytes)} to read (not a "
                             "regular file; the cap is max_read_bytes, --max-read-bytes)",
                             "too_large")
    return bytes(data)


def format_bytes(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it (1 GiB, 300 MiB, 512 B)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def is_regular_file(name: bytes) -> bool:
    """Whether ``name`` (a path as bytes) is a regular file, symlinks followed."""
    try:
        return stat.S_ISREG(os.stat(name).st_mode)
    except OSError:
        return False
