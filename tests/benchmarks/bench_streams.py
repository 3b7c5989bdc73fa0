"""Inputs that may wait, against a folder: the same photos, the same engine.

- **folder**: ``expand([folder])``, which the engine's caller thread may read too;
- **stdin**: the photos' paths through an OS pipe, read as ``axrun classify -`` reads
  them (``expand(["-"], stdin=...)``: a stream that may wait);
- **generator**: a plain Python generator over the folder's items (read at full speed,
  like any iterable that does not say it may wait).

Each in timing mode (an emulated ResNet-50-class Metis, as in ``bench_pipeline``) and
with real compute (EfficientNet-Lite0 in ONNX Runtime), in paired rounds; the ratio is
the median over rounds of each input's frames/s ÷ the folder's in the same round.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
)

from axrun import tune_process
from axrun.engine import Engine
from axrun.sources import Item, ItemStream, expand
from axrun.tasks.classify import Classifier

ROUNDS = 7


def pipe_of(paths: list[Path]) -> ItemStream:
    """The items ``axrun classify -`` reads when ``paths`` are written to its stdin."""
    read_end, write_end = os.pipe()

    def write() -> None:
        with open(write_end, "wb") as f:
            for p in paths:
                f.write(os.fsencode(p) + b"\n")

    def items() -> Iterator[Item]:
        with open(read_end, "rb") as stdin:
            yield from expand(["-"], stdin=stdin)

    threading.Thread(target=write, daemon=True).start()
    return ItemStream(items(), may_wait=True)


def generator_of(folder: Path) -> Iterator[Item]:
    yield from expand([str(folder)])


def fps(items: Callable[[], Iterable[Item]]) -> float:
    with Engine(CLASSIFIER, backend="emulator") as engine:
        task = Classifier(engine.folder)
        t0 = time.perf_counter()
        n = sum(1 for _ in engine.run(task, items()))
        return n / (time.perf_counter() - t0)


def measure(folder: Path, mode: str) -> list[dict]:
    paths = sorted(folder.glob("*.jpg"))
    fps(lambda: expand([str(folder)]))  # warm-up: page cache, lazy imports
    rounds = paired_rounds(ROUNDS, lambda: fps(lambda: expand([str(folder)])), {
        "stdin": lambda: fps(lambda: pipe_of(paths)),
        "generator": lambda: fps(lambda: generator_of(folder)),
    })
    note = f"{len(paths)} JPEGs, {mode}, median of {ROUNDS} paired rounds"
    return [{"benchmark": f"{name} input vs a folder ({mode})",
             "axrun": f"{median_of(rounds, name):,.0f} fps",
             "baseline": f"folder {median_of(rounds, 'host'):,.0f} fps",
             "ratio": median_ratio(rounds, name, "host"), "note": note}
            for name in ("stdin", "generator")]


def run() -> list[dict]:
    tune_process()  # the process settings the command line makes: measured with them
    latency = latency_ms_for(RESNET50_FPS)
    set_env(AXRUN_EMULATOR_COMPUTE="0", AXRUN_EMULATOR_LATENCY_MS=f"{latency:.4f}")
    try:
        rows = measure(photo_folder(600), f"timing mode, {RESNET50_FPS:,.0f} fps device")
    finally:
        set_env(AXRUN_EMULATOR_COMPUTE=None, AXRUN_EMULATOR_LATENCY_MS=None)
    return rows + measure(photo_folder(240), "real compute")


if __name__ == "__main__":
    for row in run():
        print(row)
