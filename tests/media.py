"""Test media built at test time: videos with exact presentation times, rotation
metadata and damage; images in the formats phones and browsers write.

Frame ``i`` of a generated video is a flat grey of :func:`level` ``(i)`` with a white
square in its top-left corner, so a test can tell which frame it got and which way up.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

TIME_BASE = Fraction(1, 90000)  # MPEG's clock: every test time is exact in it


def level(i: int) -> int:
    """The grey level of frame ``i`` (distinct for 0-39, far apart for the codecs)."""
    return 20 + (i * 5) % 200


def picture(i: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``i``: ``size`` (width, height) BGR."""
    w, h = size
    image = np.full((h, w, 3), level(i), np.uint8)
    image[: h // 4, : w // 4] = 255
    return image


def write_video(path: Path, times: Sequence[float], size: tuple[int, int] = (64, 48),
                codec: str = "libx264", rate: Fraction | None = None,
                rotation: int | None = None, container: str | None = None,
                gop: int | None = None, bframes: int = 0) -> Path:
    """A video of ``len(times)`` frames shown at ``times`` (seconds). ``rate``: the
    frame rate the stream declares (None: none, as a browser's WebM); ``rotation``:
    display rotation in degrees (a phone's portrait video); ``gop``: a key frame
    every that many frames; ``bframes``: B-frames (frames out of decode order)."""
    import av

    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate) if rate else out.add_stream(codec)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        # AVI and MPEG-2 count time in frames: their clock is the frame rate's
        base = 1 / rate if rate and container in ("avi", "mpeg") else TIME_BASE
        stream.time_base = base
        stream.codec_context.time_base = base
        if codec == "libx264":
            stream.options = {"preset": "ultrafast" if not bframes else "medium",
                              "bf": str(bframes)}
        elif codec == "mpeg2video":
            stream.codec_context.max_b_frames = bframes
            stream.bit_rate = 4_000_000  # flat frames keep their level
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(picture(i, size), format="bgr24")
            frame.pts, frame.time_base = round(t / base), base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def damage(path: Path, start: float, end: float, value: bytes | None = None) -> Path:
    """Overwrite the bytes from ``start`` to ``end`` (fractions of the file) with
    ``value`` repeated (None: random bytes)."""
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * start), int(len(data) * end)
    fill = (np.random.default_rng(0).integers(0, 256, b - a, np.uint8).tobytes()
            if value is None else (value * (b - a))[: b - a])
    data[a:b] = fill
    path.write_bytes(bytes(data))
    return path


def truncate(path: Path, keep: float) -> Path:
    """Cut the file to its first ``keep`` fraction."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
