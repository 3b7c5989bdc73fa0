"""``--ray local`` against one process: the same photos, classified on 2 emulated
ResNet-50-class devices (timing mode), the records coming back to this process.

The Ray job is what ``axrun classify --ray local`` runs (:class:`axrun.cli.scale.RayRun`),
the single process what ``axrun classify`` runs (:class:`axrun.run.Run`). Throughput
once running: records after the first over the time from the first record to the last
(so the start-up, measured apart, does not count); the start-up is the time from
starting the job to its first record (for Ray: the local cluster, shipping the model,
starting the actors).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, ClassVar

from common import RESNET50_FPS, latency_ms_for, photo_folder, set_env

from axrun import tune_process
from axrun.engine import Engine, EngineConfig
from axrun.modelfolder import load_model_folder
from axrun.run import Run, RunPolicy
from axrun.sources import expand
from axrun.tasks.classify import Classifier

COUNT = 3000
ROUNDS = 2


class Clock:
    """A sink noting when the first and the last record came."""

    needs_images: ClassVar[bool] = False

    def __init__(self) -> None:
        self.times: list[float] = []

    def write(self, result: Any) -> None:
        self.times.append(time.perf_counter())

    def close(self, complete: bool = True) -> None:
        """Nothing to close."""


def timed(job: Callable[[Clock], None]) -> tuple[float, float]:
    """(start-up s, records/s after the first) of one job."""
    clock = Clock()
    start = time.perf_counter()
    job(clock)
    first, last = clock.times[0], clock.times[-1]
    return first - start, (len(clock.times) - 1) / (last - first)


def run() -> list[dict]:
    from axrun.cli.scale import RayRun, whole_video

    set_env(AXRUN_EMULATOR_DEVICES="2", AXRUN_EMULATOR_COMPUTE="0",
            AXRUN_EMULATOR_LATENCY_MS=f"{latency_ms_for(RESNET50_FPS):.3f}")
    tune_process()
    folder = photo_folder(COUNT)
    model = load_model_folder("efficientnet-lite0-imagenet")

    def one_process(clock: Clock) -> None:
        with Engine(model, backend="emulator") as engine:
            Run(engine, Classifier(engine.folder), [clock], RunPolicy())(
                expand([str(folder)]))

    def ray_local(clock: Clock) -> None:
        job = RayRun([clock], RunPolicy(), address="local", folder=model, task="classify",
                     options={}, config=EngineConfig(), vid_stride=1,
                     background=(255, 255, 255), skip=None)
        job(expand([str(folder)], video=whole_video))

    results: dict[str, list[tuple[float, float]]] = {"one": [], "ray": []}
    for _ in range(ROUNDS):
        results["one"].append(timed(one_process))
        results["ray"].append(timed(ray_local))
    set_env(AXRUN_EMULATOR_DEVICES=None, AXRUN_EMULATOR_COMPUTE=None,
            AXRUN_EMULATOR_LATENCY_MS=None)
    one = max(rate for _, rate in results["one"])
    ray = max(rate for _, rate in results["ray"])
    start_one = min(s for s, _ in results["one"])
    start_ray = min(s for s, _ in results["ray"])
    return [{
        "benchmark": "classify --ray local vs one process (timing mode, 2 devices)",
        "axrun": f"{ray:,.0f} fps", "baseline": f"{one:,.0f} fps (one process)",
        "ratio": ray / one,
        "note": f"{COUNT} JPEGs, records back in this process in input order; rate after "
                f"the first record; 2 emulated {RESNET50_FPS:,.0f} fps devices, "
                f"{os.cpu_count()} CPUs; best of {ROUNDS}"}, {
        "benchmark": "--ray local start-up (to the first record)",
        "axrun": f"{start_ray:.1f} s", "baseline": f"{start_one:.1f} s (one process)",
        "ratio": start_ray / start_one,
        "note": "the local cluster, the model shipped to 2 actors, their devices opened "
                f"(one process: opening the device); best of {ROUNDS}"}]


if __name__ == "__main__":
    for row in run():
        print(row)
