"""Pipeline efficiency on an emulated Metis at published speed (timing mode).

The emulator skips compute (``AXRUN_EMULATOR_COMPUTE=0``) and each ``run()`` takes
the per-core latency of a ResNet-50-class Metis (1,946 frames/s over 4 cores). On a
folder of real JPEG photos we measure, in one run:

- the device ceiling (4 cores / latency),
- the host ceiling: decode + preprocess throughput with the same threads, no device,
- axrun's achieved frames/s, as a fraction of min(device, host),
- the vendor examples' two patterns on the same device and host work,
- double buffering on vs off.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import CLASSIFIER, RESNET50_FPS, latency_ms_for, photo_folder, set_env
from vendor_patterns import prefill_drain_main, submit_then_wait

from axrun.engine import Engine, EngineConfig
from axrun.sources import Item, decode_image
from axrun.tasks.classify import Classifier

PHOTOS = 600
ROUNDS = 3  # measurements alternate and the best of each is kept: this VM is noisy


def host_ceiling(paths: list[Path], task: Classifier, threads: int) -> float:
    """Frames/s of decode + preprocess alone, with ``threads`` threads."""
    buffers = [task.preprocessor.new_buffer() for _ in range(threads * 2)]

    def work(i: int) -> None:
        task.preprocess(decode_image(paths[i]), [buffers[i % len(buffers)][0]])

    with ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        list(pool.map(work, range(len(paths))))
        return len(paths) / (time.perf_counter() - t0)


def axrun_fps(paths: list[Path], config: EngineConfig) -> tuple[float, str]:
    with Engine(CLASSIFIER, backend="emulator", config=config) as engine:
        task = Classifier(engine.folder)
        t0 = time.perf_counter()
        n = sum(1 for _ in engine.run(task, [Item(str(p)) for p in paths]))
        return n / (time.perf_counter() - t0), engine.plan.describe()


def vendor_fps(paths: list[Path], pattern) -> float:
    with Engine(CLASSIFIER, backend="emulator",
                config=EngineConfig(double_buffer=False)) as engine:
        task = Classifier(engine.folder)

        def prepare(path: Path, slot):
            return task.preprocess(decode_image(path), [slot])

        def finish(outputs, meta):
            return task.postprocess(outputs, [meta])

        t0 = time.perf_counter()
        n = pattern(engine.session, paths, prepare, finish)
        return n / (time.perf_counter() - t0)


def run() -> list[dict]:
    latency = latency_ms_for(RESNET50_FPS)
    set_env(AXRUN_EMULATOR_COMPUTE="0", AXRUN_EMULATOR_LATENCY_MS=f"{latency:.4f}")
    try:
        folder = photo_folder(PHOTOS)
        paths = sorted(folder.glob("*.jpg"))
        config = EngineConfig()
        with Engine(CLASSIFIER, backend="emulator", config=config) as engine:
            task = Classifier(engine.folder)
        axrun_fps(paths[:60], config)  # warm-up: page cache, lazy imports
        best: dict[str, float] = {}
        for _ in range(ROUNDS):
            measured = {
                "host": host_ceiling(paths, task, config.threads),
                "axrun": axrun_fps(paths, config)[0],
                "no_db": axrun_fps(paths, EngineConfig(double_buffer=False))[0],
                "quick": vendor_fps(paths, submit_then_wait),
                "prefill": vendor_fps(paths, prefill_drain_main),
            }
            best = {k: max(v, best.get(k, 0.0)) for k, v in measured.items()}
        plan = axrun_fps(paths[:8], config)[1]
        device = RESNET50_FPS
        host, achieved, no_db = best["host"], best["axrun"], best["no_db"]
        quick, prefill = best["quick"], best["prefill"]
        ceiling = min(host, device)
    finally:
        set_env(AXRUN_EMULATOR_COMPUTE=None, AXRUN_EMULATOR_LATENCY_MS=None)
    setting = (f"emulated {device:,.0f} fps device ({latency:.3f} ms/inference/core), "
               f"{PHOTOS} JPEGs, best of {ROUNDS} alternating rounds")
    return [
        {"benchmark": "pipeline efficiency (classify, timing mode)",
         "axrun": f"{achieved:,.0f} fps", "baseline": f"ceiling {ceiling:,.0f} fps "
         f"(device {device:,.0f}, host {host:,.0f})", "ratio": achieved / ceiling,
         "note": f"{setting}; {plan}"},
        {"benchmark": "vs vendor quickstart (submit-then-wait)", "axrun": f"{achieved:,.0f} fps",
         "baseline": f"{quick:,.0f} fps", "ratio": achieved / quick, "note": setting},
        {"benchmark": "vs vendor YOLO11 (prefill/drain, main-thread preprocess)",
         "axrun": f"{achieved:,.0f} fps", "baseline": f"{prefill:,.0f} fps",
         "ratio": achieved / prefill, "note": setting},
        {"benchmark": "double buffering on vs off", "axrun": f"{achieved:,.0f} fps",
         "baseline": f"{no_db:,.0f} fps", "ratio": achieved / no_db, "note": setting},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
