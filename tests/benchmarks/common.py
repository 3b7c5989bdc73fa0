"""Shared helpers of the benchmark scripts (not unit tests; run by ``make bench``)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "models" / "samples"
CLASSIFIER = ROOT / "models" / "efficientnet-lite0-imagenet"
DETECTOR = ROOT / "models" / "yolox-nano-coco"
sys.path.insert(0, str(ROOT / "tests"))

RESNET50_FPS = 1946.0  # published Metis throughput, 4 cores (DESIGN §5)
YOLO11S_FPS = 565.0


def latency_ms_for(fps: float, cores: int = 4) -> float:
    """Per-inference latency of one core for a device doing ``fps`` over ``cores``."""
    return cores / fps * 1000.0


def photo_folder(count: int) -> Path:
    """A temporary folder of ``count`` real JPEG photos (the samples, repeated)."""
    folder = Path(tempfile.mkdtemp(prefix="axrun-bench-"))
    photos = sorted(SAMPLES.glob("*.jpg"))
    for i in range(count):
        src = photos[i % len(photos)]
        shutil.copy(src, folder / f"{i:05d}_{src.name}")
    return folder


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of ``repeats`` calls (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def set_env(**values: str | None) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def make_video(path: Path, frames: int, size: tuple[int, int] = (1280, 720),
               fps: float = 30.0) -> Path:
    """A video of real content: the sample photos, slowly panned, ``size`` = (w, h)."""
    import cv2
    import numpy as np

    from axrun.sources import decode_image

    photos = [cv2.resize(decode_image(p), (size[0] + 200, size[1] + 120))
              for p in sorted(SAMPLES.glob("*.jpg"))]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        photo = photos[(i // 60) % len(photos)]
        dx, dy = (i % 60) * 3, (i % 60) * 2
        writer.write(np.ascontiguousarray(photo[dy:dy + size[1], dx:dx + size[0]]))
    writer.release()
    return path
