"""Decoding image files as a viewer shows them: EXIF orientation applied,
transparency composited over a background, each page of a multi-page file, and
HEIC/HEIF/AVIF through Pillow's plugins (pillow-heif).

JPEG goes through OpenCV (libjpeg-turbo, the fastest here, the file read and decoded
in one call with the GIL released); PNG, WebP, TIFF, GIF, HEIC/HEIF and AVIF through
Pillow, which keeps their alpha and pages; anything else OpenCV decodes (BMP, PNM,
JPEG 2000, OpenEXR...) through OpenCV. A file that none decodes gets an error naming
its format, and what to install when a plugin would decode it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from axrun.errors import InputError
from axrun.files import MAX_READ_BYTES, is_regular_file, read_bytes

# Shown under transparent pixels: a browser's page, an image viewer's default.
DEFAULT_BACKGROUND = (255, 255, 255)
# OpenCV refuses images over this many pixels unless OPENCV_IO_MAX_IMAGE_PIXELS says
# otherwise (its own default, 2^30); axrun applies the same cap to Pillow's formats.
OPENCV_DEFAULT_MAX_PIXELS = 1 << 30
MAX_PIXELS_VARIABLE = "OPENCV_IO_MAX_IMAGE_PIXELS"
# Formats Pillow decodes with their alpha and pages (by leading bytes, below).
PILLOW_FORMATS = frozenset({"PNG", "WebP", "TIFF", "GIF", "HEIF", "AVIF"})
# Formats that may hold several pages or frames, by name.
PAGED_SUFFIXES = frozenset({".tif", ".tiff", ".gif", ".webp", ".png", ".apng"})
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
                b"mif1", b"msf1")
_PLUGINS = {"HEIF": "pillow-heif", "JPEG XL": "pillow-jxl-plugin"}


def image_format(head: bytes) -> str | None:
    """The image format of a file from its first 32 bytes (None: not one known here)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JPEG XL"
    if head.startswith(b"\x00\x00\x00\x0cjP  "):
        return "JPEG 2000"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:1] == b"P" and head[1:2] in b"123456" and len(head) > 2:
        return "PNM"
    return None


def max_pixels() -> int:
    """The pixel cap (:data:`MAX_PIXELS_VARIABLE`, else OpenCV's default)."""
    try:
        return int(os.environ.get(MAX_PIXELS_VARIABLE, OPENCV_DEFAULT_MAX_PIXELS))
    except ValueError:
        return OPENCV_DEFAULT_MAX_PIXELS


def _pil() -> Any:
    """Pillow, with the HEIF/AVIF opener of pillow-heif registered (once)."""
    from PIL import Image

    try:
        import pillow_heif
    except ImportError:
        pass
    else:
        if "HEIF" not in Image.OPEN:
            pillow_heif.register_heif_opener()
    Image.MAX_IMAGE_PIXELS = None  # the cap is axrun's (max_pixels), checked on the header
    return Image


def page_count(path: str | Path) -> int:
    """How many pages or frames a multi-page file holds (1 when it cannot tell)."""
    Image = _pil()
    try:
        with Image.open(os.fsencode(path) if isinstance(path, Path) else path) as im:
            return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:
        return 1


def _over_cap(name: str | Path, size: tuple[int, int]) -> InputError:
    w, h = size
    cap = max_pixels()
    return InputError(
        f"{name}: {w}x{h} pixels ({w * h / 1e6:,.0f} Mpx) is over the cap of "
        f"{cap / 1e6:,.0f} Mpx; {MAX_PIXELS_VARIABLE}=N raises it (for axrun and OpenCV)",
        "too_large")


def _composite(im: Any, background: Sequence[int]) -> Any:
    """An RGB Pillow image: transparent pixels composited over ``background`` (RGB)."""
    Image = _pil()
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or im.has_transparency_data:
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        base.alpha_composite(rgba)
        return base.convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit grey: top 8 bits
        grey = np.asarray(im).astype(np.uint32)
        shift = 8 if grey.max() > 255 or im.mode.startswith("I;16") else 0
        return Image.fromarray((grey >> shift).clip(0, 255).astype(np.uint8)).convert("RGB")
    if im.mode == "F":
        return Image.fromarray(np.asarray(im).clip(0, 255).astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def _pillow_decode(data: bytes, name: str | Path, page: int | None,
                   background: Sequence[int]) -> np.ndarray:
    from PIL import ImageOps, UnidentifiedImageError

    Image = _pil()
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels():
                raise _over_cap(name, im.size)
            if page:
                im.seek(page)
            upright = ImageOps.exif_transpose(im)
            rgb = _composite(upright, background)
    except InputError:
        raise
    except EOFError:
        raise InputError(f"{name}: has no page {page}", "decode") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{name}: cannot decode image ({exc})", "decode") from None
    return np.ascontiguousarray(np.asarray(rgb)[..., ::-1])


def decode_bytes(data: bytes, name: str | Path, page: int | None = None,
                 background: Sequence[int] = DEFAULT_BACKGROUND) -> np.ndarray:
    """Decode an encoded image to BGR ``uint8`` (H, W, 3) as a viewer shows it: EXIF
    orientation applied, transparency over ``background`` (RGB), ``page`` of a
    multi-page file (0 first). ``name`` is for messages.

    Raises:
        InputError: ``empty``; ``too_large`` over the pixel cap (the message says the
            size, the cap and how to raise it); ``decode`` when it is not an image
            decodable here (the message names the format, and the plugin to install
            when one would decode it).
    """
    if not data:
        raise InputError(f"{name}: empty (0 bytes)", "empty")
    fmt = image_format(data[:32])
    if fmt in PILLOW_FORMATS or (page or 0) > 0:
        return _pillow_decode(data, name, page, background)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        image = None
        if "MAX_IMAGE_PIXELS" in str(exc.err):
            size = _header_size(data)
            raise (_over_cap(name, size) if size else InputError(
                f"{name}: over the pixel cap of {max_pixels() / 1e6:,.0f} Mpx; "
                f"{MAX_PIXELS_VARIABLE}=N raises it", "too_large")) from None
    if image is None:
        raise InputError(f"{name}: {_undecodable(fmt)}", "decode")
    return image


def _header_size(data: bytes) -> tuple[int, int] | None:
    """An image's size from its header (Pillow reads it without decoding)."""
    try:
        with _pil().open(io.BytesIO(data)) as im:
            return int(im.width), int(im.height)
    except Exception:
        return None


def _undecodable(fmt: str | None) -> str:
    if fmt is None:
        return "not a decodable image"
    plugin = _PLUGINS.get(fmt)
    return f"a {fmt} image that cannot be decoded here" + (
        f" (install {plugin})" if plugin else " (damaged?)")


def decode_image(path: str | Path, max_bytes: int = MAX_READ_BYTES, page: int | None = None,
                 background: Sequence[int] = DEFAULT_BACKGROUND) -> np.ndarray:
    """Decode an image file to BGR ``uint8`` (see :func:`decode_bytes`). A JPEG that is
    a regular file is read and decoded by one OpenCV call (EXIF orientation applied);
    the rest is read (at most ``max_bytes`` when it is not a regular file: a named
    pipe, a device) and decoded from its bytes.

    Raises:
        InputError: as :func:`decode_bytes`, and for files that cannot be read.
    """
    # OpenCV gets the name as bytes: a name that is not UTF-8 crashes it as a str.
    name = os.fsencode(path)
    regular = b"\0" not in name and is_regular_file(name)
    if regular and not page and os.path.splitext(name)[1].lower() in (b".jpg", b".jpeg",
                                                                      b".jpe"):
        try:
            image: np.ndarray | None = cv2.imread(name, cv2.IMREAD_COLOR)  # type: ignore[call-overload]
        except cv2.error:
            image = None
        if image is not None:
            return image
    return decode_bytes(read_bytes(path, None if regular else max_bytes), path, page,
                        background)
