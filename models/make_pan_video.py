"""A short sample video for the demo and the README's video recipes: a camera pan
across a bundled photo, encoded as H.264 MP4 (through PyAV, an axrun dependency).

    python models/make_pan_video.py out/pan.mp4

The same file every time (no timestamps from the clock): 3 s at 25 frames/s, 640×360,
a window sliding left to right and slightly down across ``samples/stereo_motorcycle.jpg``
(a person and two motorcycles), scaled up so the pan has room to move.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

PHOTO = Path(__file__).resolve().parent / "samples" / "stereo_motorcycle.jpg"
SIZE = (640, 360)  # width, height
FPS = 25
SECONDS = 3


def frames(photo: np.ndarray) -> list[np.ndarray]:
    """The pan's frames (BGR), the window moving at a constant speed."""
    w, h = SIZE
    scale = max(1.6 * w / photo.shape[1], 1.3 * h / photo.shape[0])
    big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    count = FPS * SECONDS
    out = []
    for i in range(count):
        t = i / (count - 1)
        x = round(t * (big.shape[1] - w))
        y = round(t * (big.shape[0] - h) * 0.5)
        out.append(np.ascontiguousarray(big[y: y + h, x: x + w]))
    return out


def main(path: Path) -> None:
    photo = cv2.imread(str(PHOTO))
    if photo is None:
        raise SystemExit(f"cannot read {PHOTO}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, FPS)
        for i, image in enumerate(frames(photo)):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    print(f"wrote {path} ({FPS * SECONDS} frames, {SIZE[0]}x{SIZE[1]}, {FPS} frames/s)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python models/make_pan_video.py OUT.mp4")
    main(Path(sys.argv[1]))
