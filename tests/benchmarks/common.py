"""Shared helpers of the benchmark scripts (not unit tests; run by ``make bench``)."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "models" / "samples"
CLASSIFIER = ROOT / "axrun" / "models" / "efficientnet-lite0-imagenet"
DETECTOR = ROOT / "axrun" / "models" / "yolox-nano-coco"
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


def threaded_rate(count: int, work: Callable[[int, int], object], threads: int) -> float:
    """Items/s of ``work(i, thread)`` for i in ``range(count)`` on ``threads`` plain
    threads sharing one counter: the least bookkeeping a threaded host stage can have."""
    counter = iter(range(count))
    lock = threading.Lock()
    failed: list[BaseException] = []

    def loop(thread: int) -> None:
        while not failed:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                work(i, thread)
            except BaseException as exc:  # a rate of work that failed is no rate
                failed.append(exc)

    pool = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if failed:
        raise failed[0]
    return count / (time.perf_counter() - t0)


def paired_rounds(rounds: int, host: Callable[[], float],
                  runs: dict[str, Callable[[], float]]) -> list[dict[str, float]]:
    """Per round: ``host`` (the mean of a ceiling measured before and after the runs)
    and each run's rate, the runs in alternating order.

    On a shared VM whose speed drifts by ±20 %, ratios between measurements of the same
    round keep the drift out; take their median (:func:`median_ratio`) so that one
    disturbed round does not decide the result.
    """
    out = []
    for r in range(rounds):
        before = host()
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        got = {name: runs[name]() for name in order}
        got["host"] = (before + host()) / 2
        out.append(got)
    return out


def median_of(rounds: list[dict[str, float]], name: str) -> float:
    return statistics.median(r[name] for r in rounds)


def median_ratio(rounds: list[dict[str, float]], a: str, b: str) -> float:
    """The median over rounds of ``a ÷ b`` measured in the same round."""
    return statistics.median(r[a] / r[b] for r in rounds)


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

    from axrun.images import decode_image

    photos = [cv2.resize(decode_image(p), (size[0] + 200, size[1] + 120))
              for p in sorted(SAMPLES.glob("*.jpg"))]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        photo = photos[(i // 60) % len(photos)]
        dx, dy = (i % 60) * 3, (i % 60) * 2
        writer.write(np.ascontiguousarray(photo[dy:dy + size[1], dx:dx + size[0]]))
    writer.release()
    return path
