"""Decoding image files as a viewer shows them: EXIF orientation applied,
transparency composited over a background, each page of a multi-page file, and
HEIC/HEIF/AVIF through Pillow's plugins (pillow-heif).

JPEG goes through simplejpeg (libjpeg-turbo; twice as fast as OpenCV's decoder here
at full size), which can also decode at 1/2, 1/4 or 1/8 scale in the DCT domain: given
how much the preprocessing will shrink the image (``scale_for``), only as many pixels
are decoded as the network can see. PNG, WebP, TIFF, GIF, HEIC/HEIF and AVIF go through
Pillow, which keeps their alpha and pages; anything else OpenCV decodes (BMP, PNM, JPEG
2000, OpenEXR, CMYK JPEGs...) through OpenCV. A file that none decodes gets an error naming
its format, and what to install when a plugin would decode it.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

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
    """Pillow's ``Image`` module (imported on first use)."""
    from PIL import Image

    return Image


def _open(data: bytes | BinaryIO, name: str | Path) -> Any:
    """A Pillow image of an encoded file: HEIF through pillow-heif's own reader (its
    opener is not registered: Pillow's registry is the process's), anything else
    through Pillow (whose own decompression-bomb limit becomes a ``too_large``
    error: :func:`axrun.tune_process` lifts it so that axrun's cap alone applies).

    Raises:
        InputError: ``too_large`` past Pillow's limit; ``decode`` when HEIF needs
            pillow-heif and it is missing.
    """
    Image = _pil()
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    head = stream.read(32)
    stream.seek(0)
    if image_format(head) == "HEIF":
        try:
            import pillow_heif
        except ImportError:
            raise InputError(f"{name}: {_undecodable('HEIF')}", "decode") from None
        return pillow_heif.open_heif(stream, convert_hdr_to_8bit=True).to_pillow()
    try:
        return Image.open(stream)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name}: {exc} (Pillow's limit; axrun.tune_process(), which the "
                         "command line calls, leaves only axrun's)", "too_large") from None


def page_count(path: str | Path) -> int:
    """How many pages or frames a multi-page file holds (1 when it cannot tell)."""
    try:
        with open(path, "rb") as f, _open(f, path) as im:
            return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:
        return 1


def _over_cap(name: str | Path, size: tuple[int, int]) -> InputError:
    w, h = size
    return InputError(
        f"{name}: {w}x{h} = {w * h:,} pixels is over the cap of {max_pixels():,}; "
        f"{MAX_PIXELS_VARIABLE}=N raises it (for axrun and OpenCV)", "too_large")


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

    try:
        with _open(data, name) as im:
            if page:
                im.seek(page)
            if im.width * im.height > max_pixels():  # each page's own size
                raise _over_cap(name, im.size)
            upright = ImageOps.exif_transpose(im)
            rgb = _composite(upright, background)
    except InputError:
        raise
    except EOFError:
        raise InputError(f"{name}: has no page {page}", "decode") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{name}: cannot decode image ({exc})", "decode") from None
    return np.ascontiguousarray(np.asarray(rgb)[..., ::-1])


# How much the preprocessing will resize an image of (height, width) upright pixels
# (preprocess.resize_factor for the task's recipe and input size).
ScaleFor = Callable[[int, int], float]
class Original(NamedTuple):
    """The image a decoded one was decoded from: its size (upright, pixels) and the
    scale it was decoded at per axis (decoded pixels per original pixel; for a JPEG 1,
    1/2, 1/4 or 1/8 on both: libjpeg's decoded pixel ``i`` covers original pixels
    ``[i / scale, (i + 1) / scale)``, the last one cut at the edge)."""

    width: int
    height: int
    scale_x: float = 1.0
    scale_y: float = 1.0


Decoded = tuple[np.ndarray, Original]  # BGR pixels, and what they were decoded from


def _exif_orientation(data: bytes) -> int:
    """A JPEG's EXIF orientation (1-8; 1 when it has none): tag 0x0112 of the first
    IFD in its APP1 ``Exif`` segment (read here in a few µs; Pillow took 190 µs a
    photo, holding the GIL the decoding threads need)."""
    i, n = 2, len(data)
    while i + 4 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no headers after
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\0\0":
            return _tiff_orientation(data, i + 10, min(n, i + 2 + length))
        i += 2 + length
    return 1


def _tiff_orientation(data: bytes, start: int, end: int) -> int:
    """The orientation tag of the TIFF structure at ``data[start:end]`` (EXIF's)."""
    order = {b"II": "little", b"MM": "big"}.get(data[start:start + 2])
    if order is None:
        return 1
    ifd = start + int.from_bytes(data[start + 4:start + 8], order)  # type: ignore[arg-type]
    if ifd + 2 > end:
        return 1
    for k in range(int.from_bytes(data[ifd:ifd + 2], order)):  # type: ignore[arg-type]
        entry = ifd + 2 + 12 * k
        if entry + 12 > end:
            break
        if int.from_bytes(data[entry:entry + 2], order) == 0x0112:  # type: ignore[arg-type]
            kind = int.from_bytes(data[entry + 2:entry + 4], order)  # type: ignore[arg-type]
            width = 4 if kind == 4 else 2  # SHORT, as the standard says; LONG from some writers
            value = int.from_bytes(data[entry + 8:entry + 8 + width], order)  # type: ignore[arg-type]
            return value if 1 <= value <= 8 else 1
    return 1


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored → as EXIF orientation says to display them."""
    if orientation in (5, 7):
        image = cv2.transpose(image)  # 5: transpose; 7: transverse (then 180)
    turn = {3: cv2.ROTATE_180, 6: cv2.ROTATE_90_CLOCKWISE, 7: cv2.ROTATE_180,
            8: cv2.ROTATE_90_COUNTERCLOCKWISE}.get(orientation)
    if turn is not None:
        image = cv2.rotate(image, turn)
    if orientation in (2, 4):
        image = cv2.flip(image, 1 if orientation == 2 else 0)
    return image


def _jpeg(data: bytes, name: str | Path, scale_for: ScaleFor | None) -> Decoded | None:
    """A JPEG through simplejpeg, at the smallest DCT scale that keeps what the
    preprocessing needs (``scale_for``; None: full size), EXIF orientation applied;
    None for what it does not decode (CMYK, a broken header: OpenCV then says why)."""
    import simplejpeg

    try:
        h, w, space, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if space not in ("YCbCr", "Gray"):
        return None
    orientation = _exif_orientation(data)
    transposed = orientation in (5, 6, 7, 8)
    uh, uw = (w, h) if transposed else (h, w)  # the upright original
    # the largest of 1/8, 1/4, 1/2 that keeps what the preprocessing needs (the DCT
    # scales libjpeg-turbo decodes fastest; its n/8 between them are slower than 1/2)
    factor = min(1.0, scale_for(uh, uw)) if scale_for is not None else 1.0
    d = next((d for d in (8, 4, 2) if 1 / d >= factor), 1)
    out_h, out_w = math.ceil(h / d), math.ceil(w / d)
    if out_h * out_w > max_pixels():  # even what the network needs is too many pixels
        raise _over_cap(name, (uw, uh))
    try:  # strict: libjpeg's warnings raise; a file cut short is an error, not grey
        image = simplejpeg.decode_jpeg(data, "bgr", min_height=out_h, min_width=out_w)
    except ValueError as exc:
        if "premature end" in str(exc).lower():
            raise InputError(f"{name}: a JPEG cut short ({exc}): the rest would be grey",
                             "decode") from None
        try:  # other warnings (extraneous bytes...): the image is whole, as viewers show it
            image = simplejpeg.decode_jpeg(data, "bgr", min_height=out_h, min_width=out_w,
                                           strict=False)
        except ValueError as again:
            raise InputError(f"{name}: cannot decode JPEG ({again})", "decode") from None
    return _orient(image, orientation), Original(uw, uh, 1 / d, 1 / d)


def decode_bytes(data: bytes, name: str | Path, page: int | None = None,
                 background: Sequence[int] = DEFAULT_BACKGROUND) -> np.ndarray:
    """Decode an encoded image to BGR ``uint8`` at full size (see
    :func:`decode_bytes_for`)."""
    return decode_bytes_for(data, name, page, background)[0]


def decode_bytes_for(data: bytes, name: str | Path, page: int | None = None,
                     background: Sequence[int] = DEFAULT_BACKGROUND,
                     scale_for: ScaleFor | None = None) -> Decoded:
    """Decode an encoded image to BGR ``uint8`` (H, W, 3) as a viewer shows it: EXIF
    orientation applied, transparency over ``background`` (RGB), ``page`` of a
    multi-page file (0 first). ``name`` is for messages. With ``scale_for``, a JPEG is
    decoded only as large as the preprocessing needs (1/2, 1/4 or 1/8 scale; one over
    the pixel cap is then refused only if even that is over it). Returns the pixels
    and what they were decoded from (:class:`Original`).

    Raises:
        InputError: ``empty``; ``too_large`` over the pixel cap (the message says the
            size, the cap and how to raise it); ``decode`` when it is not an image
            decodable here (the message names the format, and the plugin to install
            when one would decode it).
    """
    if not data:
        raise InputError(f"{name}: empty (0 bytes)", "empty")
    fmt = image_format(data[:32])
    if fmt == "JPEG" and not page:
        decoded = _jpeg(data, name, scale_for)
        if decoded is not None:
            return decoded
    if fmt in PILLOW_FORMATS or (page or 0) > 0:
        pixels = _pillow_decode(data, name, page, background)
        return pixels, Original(pixels.shape[1], pixels.shape[0])
    image: np.ndarray | None
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
        raise InputError(f"{name}: {_undecodable(fmt, data[:32])}", "decode")
    return image, Original(image.shape[1], image.shape[0])


def _header_size(data: bytes) -> tuple[int, int] | None:
    """An image's size from its header (Pillow reads it without decoding)."""
    try:
        with _open(data, "") as im:
            return int(im.width), int(im.height)
    except Exception:
        return None


_VIDEO_MAGIC = ((4, b"ftyp", "an MP4/MOV video"), (0, b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
                (8, b"AVI ", "an AVI video"), (0, b"\x00\x00\x01\xba", "an MPEG video"))


def _undecodable(fmt: str | None, head: bytes = b"") -> str:
    if fmt is None:
        video = next((what for at, magic, what in _VIDEO_MAGIC
                      if head[at:at + len(magic)] == magic), None)
        if video is not None:
            return f"not an image but {video} by its first bytes: give it a video suffix"
        return "not a decodable image"
    plugin = _PLUGINS.get(fmt)
    return f"a {fmt} image that cannot be decoded here" + (
        f" (install {plugin})" if plugin else " (damaged?)")


def decode_image(path: str | Path, max_bytes: int = MAX_READ_BYTES, page: int | None = None,
                 background: Sequence[int] = DEFAULT_BACKGROUND) -> np.ndarray:
    """Decode an image file to BGR ``uint8`` at full size (see :func:`decode_image_for`)."""
    return decode_image_for(path, max_bytes, page, background)[0]


def decode_image_for(path: str | Path, max_bytes: int = MAX_READ_BYTES,
                     page: int | None = None, background: Sequence[int] = DEFAULT_BACKGROUND,
                     scale_for: ScaleFor | None = None) -> Decoded:
    """Decode an image file (see :func:`decode_bytes_for`). An input that is not a
    regular file (a named pipe, a device) is read up to ``max_bytes``.

    Raises:
        InputError: as :func:`decode_bytes_for`, and for files that cannot be read.
    """
    name = os.fsencode(path)
    regular = b"\0" not in name and is_regular_file(name)
    return decode_bytes_for(read_bytes(path, None if regular else max_bytes), path, page,
                            background, scale_for)
