"""Detection on a 720p video: pipeline efficiency in timing mode at YOLO11s-class speed
(565 frames/s over 4 cores), and real compute vs a plain ONNX Runtime float loop."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from bench_end_to_end import detect_rows
from common import (
    DETECTOR,
    YOLO11S_FPS,
    latency_ms_for,
    make_video,
    median_of,
    median_ratio,
    paired_rounds,
    set_env,
    threaded_rate,
)

from axrun import tune_process
from axrun.engine import Engine, EngineConfig
from axrun.preprocess import resize_factor
from axrun.sources import expand
from axrun.tasks.detect import Detector

FRAMES = 300
ROUNDS = 3


def host_ceiling(video: Path, task: Detector, outputs: list, threads: int) -> float:
    """All host work, no device: video decode (its own thread, in order, as in the
    pipeline), then colour conversion at the size needed, preprocess and postprocess
    (of the timing-mode outputs) in ``threads`` plain threads."""
    frames = expand([str(video)])
    buffers = [task.preprocessor.new_buffer()[0] for _ in range(threads)]
    lock = threading.Lock()
    writer = task.preprocessor

    def scale_for(h: int, w: int) -> float:  # as the engine's host threads convert frames
        return resize_factor(writer.recipe, writer.size_hw, (h, w))

    def work(_: int, thread: int) -> None:
        with lock:
            item = next(frames)
        image, original = item.load_for(scale_for)
        meta = task.preprocess(image, [buffers[thread]])
        if original is not None:
            meta = meta.of_original(*original)
        task.postprocess(outputs, [meta])

    return threaded_rate(FRAMES, work, threads)


def axrun_fps(video: Path, config: EngineConfig) -> tuple[float, str]:
    with Engine(DETECTOR, backend="emulator", config=config) as engine:
        task = Detector(engine.folder)
        t0 = time.perf_counter()
        n = sum(1 for _ in engine.run(task, expand([str(video)])))
        return n / (time.perf_counter() - t0), engine.plan.describe()


def run() -> list[dict]:
    tune_process()  # the process settings the command line makes: measured with them
    video = make_video(Path(tempfile.mkdtemp(prefix="axrun-bench-")) / "street720p.mp4", FRAMES)
    latency = latency_ms_for(YOLO11S_FPS)
    set_env(AXRUN_EMULATOR_COMPUTE="0", AXRUN_EMULATOR_LATENCY_MS=f"{latency:.4f}")
    try:
        config = EngineConfig()
        with Engine(DETECTOR, backend="emulator") as engine:
            task = Detector(engine.folder)
            outputs = [np.full(i.shape, i.zero_point, np.int8)
                       for i in engine.session.output_infos]
        axrun_fps(video, config)  # warm-up
        rounds = paired_rounds(ROUNDS, lambda: host_ceiling(video, task, outputs, config.threads),
                               {"axrun": lambda: axrun_fps(video, config)[0]})
    finally:
        set_env(AXRUN_EMULATOR_COMPUTE=None, AXRUN_EMULATOR_LATENCY_MS=None)
    host, achieved = median_of(rounds, "host"), median_of(rounds, "axrun")
    for r in rounds:
        r["ceiling"] = min(r["host"], YOLO11S_FPS)
    rows = [{"benchmark": "pipeline efficiency (detect 720p video, timing mode)",
             "axrun": f"{achieved:,.0f} fps", "baseline": f"ceiling {min(host, YOLO11S_FPS):,.0f}"
             f" fps (device {YOLO11S_FPS:,.0f}, host {host:,.0f})",
             "ratio": median_ratio(rounds, "axrun", "ceiling"),
             "note": f"emulated YOLO11s-class device ({latency:.2f} ms/inference/core); host = "
             f"decode + preprocess + postprocess; {FRAMES} frames, median of {ROUNDS} paired "
             "rounds"}]
    rows.append(detect_rows(video, 120))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
