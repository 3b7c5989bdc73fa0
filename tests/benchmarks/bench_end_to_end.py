"""End to end with real compute: axrun on the emulator vs a plain ONNX Runtime float loop.

What a user without a Metis would otherwise run: decode, the same preprocessing, the
float network in ONNX Runtime (default threads), the same decoding — one image after the
other. axrun runs the INT8 model on the emulator through its whole pipeline. Both see
the same photos in the same run.
"""

from __future__ import annotations

import time
from pathlib import Path

import onnxruntime as ort
from common import CLASSIFIER, DETECTOR, ROOT, photo_folder

from axrun import tune_process
from axrun.engine import Engine, EngineConfig
from axrun.preprocess import network_input
from axrun.sources import Item, expand
from axrun.tasks.classify import Classifier, softmax
from axrun.tasks.detect import Detector, decode_yolox, select

FLOAT_CLASSIFIER = ROOT / "build" / "models-cache" / "efficientnet-lite0.onnx"
FLOAT_DETECTOR = ROOT / "build" / "models-cache" / "yolox-nano.onnx"
ROUNDS = 2


def float_loop(model: Path, items: list[Item], recipe, shape, decode) -> float:
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    t0 = time.perf_counter()
    for item in items:
        x = network_input(item.load(), recipe, shape[2:])[0]
        decode(sess.run(None, {name: x})[0][0])
    return len(items) / (time.perf_counter() - t0)


def axrun_loop(folder: Path, items: list[Item], make_task) -> float:
    with Engine(folder, backend="emulator", config=EngineConfig()) as engine:
        task = make_task(engine.folder)
        t0 = time.perf_counter()
        n = sum(1 for _ in engine.run(task, items))
        return n / (time.perf_counter() - t0)


def compare(name: str, folder: Path, float_model: Path, items: list[Item], make_task,
            shape, decode_float, note: str) -> dict:
    if not float_model.exists():
        return {"benchmark": name, "axrun": "-", "baseline": "-", "ratio": float("nan"),
                "note": f"skipped: {float_model.name} missing (run make models)"}
    task = make_task(Engine(folder, backend="emulator").folder)
    recipe = task.preprocessor.recipe
    axrun_loop(folder, items[:8], make_task)  # warm-up
    best_a = best_f = 0.0
    for _ in range(ROUNDS):
        best_f = max(best_f, float_loop(float_model, items, recipe, shape, decode_float))
        best_a = max(best_a, axrun_loop(folder, items, make_task))
    return {"benchmark": name, "axrun": f"{best_a:,.1f} fps", "baseline":
            f"{best_f:,.1f} fps (ONNX Runtime float loop)", "ratio": best_a / best_f, "note": note}


def classify_row(count: int = 120) -> dict:
    tune_process()  # the process settings the command line makes: measured with them
    folder = photo_folder(count)
    items = [Item(str(p)) for p in sorted(folder.glob("*.jpg"))]

    def decode(logits):
        return softmax(logits).argsort()[-5:]

    return compare("end to end classify (EfficientNet-Lite0, real compute)", CLASSIFIER,
                   FLOAT_CLASSIFIER, items, lambda f: Classifier(f), (1, 3, 224, 224), decode,
                   f"{count} JPEG photos; emulator INT8 vs float32")


def detect_rows(video: Path, frames: int) -> dict:
    items = list(expand([str(video)]))[:frames]
    probe = Detector(Engine(DETECTOR, backend="emulator").folder)

    def decode(pred):
        return select(*decode_yolox(pred, probe.input_hw, probe.strides), probe.options)

    return compare("end to end detect (YOLOX-Nano, real compute)", DETECTOR, FLOAT_DETECTOR,
                   items, lambda f: Detector(f), (1, 3, 416, 416), decode,
                   f"{frames} frames of a 720p video; emulator INT8 vs float32")


if __name__ == "__main__":
    print(classify_row())
