"""Pipeline efficiency on an emulated Metis at published speed (timing mode).

The emulator skips compute (``AXRUN_EMULATOR_COMPUTE=0``) and each ``run()`` takes
the per-core latency of a ResNet-50-class Metis (1,946 frames/s over 4 cores). On a
folder of real JPEG photos we measure, in one run, in paired rounds (see
:func:`common.paired_rounds`):

- the device ceiling (4 cores / latency),
- the host ceiling: decode + preprocess throughput with the same number of threads,
  no device, no pipeline (plain threads sharing a counter),
- axrun's achieved frames/s, as a fraction of min(device, host),
- the vendor examples' two patterns on the same device and host work,
- double buffering on vs off.
"""

from __future__ import annotations

import time
from pathlib import Path

from common import (
    CLASSIFIER,
    RESNET50_FPS,
    latency_ms_for,
    median_of,
    median_ratio,
    paired_rounds,
    photo_folder,
    set_env,
    threaded_rate,
)
from vendor_patterns import prefill_drain_main, submit_then_wait

from axrun import tune_process
from axrun.engine import Engine, EngineConfig
from axrun.images import decode_image
from axrun.sources import Item
from axrun.tasks.classify import Classifier

PHOTOS = 600
ROUNDS = 11


def host_ceiling(paths: list[Path], task: Classifier, threads: int) -> float:
    """Frames/s of decode + preprocess alone, with ``threads`` threads."""
    buffers = [task.preprocessor.new_buffer()[0] for _ in range(threads)]

    def work(i: int, thread: int) -> None:
        task.preprocess(decode_image(paths[i]), [buffers[thread]])

    return threaded_rate(len(paths), work, threads)


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
    tune_process()  # the process settings the command line makes: measured with them
    latency = latency_ms_for(RESNET50_FPS)
    set_env(AXRUN_EMULATOR_COMPUTE="0", AXRUN_EMULATOR_LATENCY_MS=f"{latency:.4f}")
    try:
        folder = photo_folder(PHOTOS)
        paths = sorted(folder.glob("*.jpg"))
        config = EngineConfig()
        with Engine(CLASSIFIER, backend="emulator", config=config) as engine:
            task = Classifier(engine.folder)
        axrun_fps(paths[:60], config)  # warm-up: page cache, lazy imports
        rounds = paired_rounds(ROUNDS, lambda: host_ceiling(paths, task, config.threads), {
            "axrun": lambda: axrun_fps(paths, config)[0],
            "no_db": lambda: axrun_fps(paths, EngineConfig(double_buffer=False))[0],
            "quick": lambda: vendor_fps(paths, submit_then_wait),
            "prefill": lambda: vendor_fps(paths, prefill_drain_main),
        })
        plan = axrun_fps(paths[:8], config)[1]
    finally:
        set_env(AXRUN_EMULATOR_COMPUTE=None, AXRUN_EMULATOR_LATENCY_MS=None)
    device = RESNET50_FPS
    host, achieved = median_of(rounds, "host"), median_of(rounds, "axrun")
    for r in rounds:
        r["ceiling"] = min(r["host"], device)
    setting = (f"emulated {device:,.0f} fps device ({latency:.3f} ms/inference/core), "
               f"{PHOTOS} JPEGs, median of {ROUNDS} paired rounds")

    def versus(name: str) -> tuple[str, float]:
        return f"{median_of(rounds, name):,.0f} fps", median_ratio(rounds, "axrun", name)

    rows = [{"benchmark": "pipeline efficiency (classify, timing mode)",
             "axrun": f"{achieved:,.0f} fps",
             "baseline": f"ceiling {min(host, device):,.0f} fps (device {device:,.0f}, "
             f"host {host:,.0f})", "ratio": median_ratio(rounds, "axrun", "ceiling"),
             "note": f"{setting}; ratio: median of axrun ÷ ceiling per round; {plan}"}]
    for title, name in [("vs vendor quickstart (submit-then-wait)", "quick"),
                        ("vs vendor YOLO11 (prefill/drain, main-thread preprocess)", "prefill"),
                        ("double buffering on vs off", "no_db")]:
        baseline, ratio = versus(name)
        rows.append({"benchmark": title, "axrun": f"{achieved:,.0f} fps",
                     "baseline": baseline, "ratio": ratio, "note": setting})
    return rows

if __name__ == "__main__":
    for row in run():
        print(row)
