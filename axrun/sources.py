"""Inputs: what to run on, as a lazy stream of :class:`Item` (one per image or frame).

Image files are decoded later, in the engine's decode pool (:meth:`Item.load`);
video frames are decoded here, in order, as the stream is consumed. An input that
cannot be read becomes an item carrying its error, so it still gets a record.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from axrun.errors import InputError


@dataclass(frozen=True)
class Item:
    """One input: an image file, or one frame of a video.

    ``source`` is the path as the user gave or we found it; ``frame``/``time_s`` are
    set for video frames. ``image`` holds already-decoded pixels (video), ``error``
    a failure found before decoding.
    """

    source: str
    frame: int | None = None
    time_s: float | None = None
    image: np.ndarray | None = None
    error: InputError | None = None

    def load(self) -> np.ndarray:
        """The BGR ``uint8`` pixels (H, W, 3). Raises :class:`InputError`."""
        if self.error is not None:
            raise self.error
        if self.image is not None:
            return self.image
        return decode_image(Path(self.source))


def read_bytes(path: Path) -> bytes:
    """A file's bytes, with read failures as :class:`InputError` of a precise kind."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        kind = "broken_symlink" if path.is_symlink() else "not_found"
        raise InputError(f"{path}: no such file", kind) from None
    except PermissionError:
        raise InputError(f"{path}: permission denied", "permission") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory", "read") from None
    except OSError as exc:
        kind = "symlink_loop" if exc.errno == errno.ELOOP else "read"
        raise InputError(f"{path}: cannot read ({exc.strerror})", kind) from None


def decode_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR ``uint8``; EXIF orientation is applied.

    Greyscale, 16-bit and alpha images are converted to 8-bit BGR.
    """
    data = read_bytes(path)
    if not data:
        raise InputError(f"{path}: empty file", "empty")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise InputError(f"{path}: cannot decode image ({exc.err})", "decode") from None
    if image is None:
        raise InputError(f"{path}: not a decodable image", "decode")
    return image
