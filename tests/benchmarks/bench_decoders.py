"""Detection postprocessing per decoder family at real size (640x640 input, 80 classes,
strides 8/16/32), against the host's time per frame at YOLO11s-class speed.

Each family's folder is built in the Voyager SDK's layout (``tests/sdkfolder.py``);
the device outputs are int8 tensors like a real frame's: every score low but a few
dozen candidates above ``--conf``. The time is ``Detector.postprocess`` for one frame:
depad, dequantize, the postamble (a fixed graph here, so the model's own postamble
cost is not in it), decode, NMS. The ratio is the frame budget (two host threads
sharing 565 frames/s: 3.5 ms per frame per thread) over that time: above 1, the
decoder keeps up with the device.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from common import YOLO11S_FPS
from sdkfolder import Planted, fixed_graph, sdk_folder

from axrun.modelfolder import load_model_folder
from axrun.tasks.base import preprocess_recipe
from axrun.tasks.detect import YOLOV5_ANCHORS, Detector

SIZE, CLASSES, THREADS, REPEATS = 640, 80, 2, 30
LEVELS = [SIZE // s for s in (8, 16, 32)]
CELLS = sum(n * n for n in LEVELS)  # 8400
LABELS = [f"c{i}" for i in range(CLASSES)]
INFO = {"task_category": "ObjectDetection", "labels": LABELS}


def objects(rng: np.random.Generator, rows: int, count: int = 40) -> np.ndarray:
    """``count`` distinct row indices: the candidates of a busy frame."""
    return rng.choice(rows, count, replace=False)


def decoded_rows(rng: np.random.Generator, width: int, score_col: int) -> np.ndarray:
    """``[1, CELLS, width]``: cx, cy, w, h in pixels, then scores (low but a few)."""
    pred = np.zeros((1, CELLS, width), np.float32)
    pred[0, :, :2] = rng.uniform(0, SIZE, (CELLS, 2))
    pred[0, :, 2:4] = rng.uniform(8, 200, (CELLS, 2))
    pred[0, :, score_col:] = rng.uniform(0, 0.05, (CELLS, width - score_col))
    hits = objects(rng, CELLS)
    pred[0, hits, score_col:] = rng.uniform(0.3, 0.95, (len(hits), width - score_col))
    return pred


def postamble_family(root: Path, fmt: str, rng: np.random.Generator) -> tuple[Path, list]:
    head = Planted(np.zeros((LEVELS[0], LEVELS[0], 8), np.float32), 0.1)
    inputs = {"output0": [1, 8, LEVELS[0], LEVELS[0]]}
    if fmt == "yolox-decoded":
        outputs = {"pred": decoded_rows(rng, 5 + CLASSES, 4)}
    elif fmt == "ultralytics":
        outputs = {"pred": decoded_rows(rng, 4 + CLASSES, 4).transpose(0, 2, 1)}
    else:  # boxes-scores
        rows = decoded_rows(rng, 4 + CLASSES, 4)
        boxes = np.concatenate([rows[..., :2], rows[..., :2] + rows[..., 2:4]], 2)
        outputs = {"scores": rows[..., 4:], "boxes": boxes}
    folder = sdk_folder(root / fmt, [head], postamble=fixed_graph(inputs, **outputs),
                        model_info=INFO, size=SIZE)
    return folder, [head]


def head_family(root: Path, fmt: str, rng: np.random.Generator) -> tuple[Path, list]:
    heads = []
    if fmt == "dfl":
        for n in LEVELS:  # box distributions: broad, as a real head's
            heads.append(Planted(rng.normal(0, 1.5, (n, n, 64)).astype(np.float32), 0.05))
        for n in LEVELS:  # class logits: low, a few objects
            logits = np.full((n, n, CLASSES), -6.0, np.float32)
            logits.reshape(-1)[objects(rng, n * n * CLASSES, 14)] = 1.5
            heads.append(Planted(logits, 0.0625, channels=128))
    else:  # yolov5: 3 anchors x (5 + 80) channels
        for n in LEVELS:
            t = rng.normal(0, 1, (n, n, 3, 5 + CLASSES)).astype(np.float32)
            t[..., 4] = -7.0
            t.reshape(-1, 5 + CLASSES)[objects(rng, n * n * 3, 14), 4] = 2.0
            heads.append(Planted(t.reshape(n, n, -1), 0.0625, channels=256))
    return sdk_folder(root / fmt, heads, model_info=INFO, size=SIZE), heads


def postprocess_ms(folder: Path, planted: list, decoder: dict) -> tuple[float, int]:
    """Best-of time for one frame's postprocessing, and the detections it gave."""
    model = load_model_folder(folder)
    task = Detector(model, recipe=preprocess_recipe(model, "detect"), decoder=decoder)
    buffer = task.preprocessor.new_buffer()[0]
    geometry = task.preprocess(np.zeros((720, 1280, 3), np.uint8), [buffer])
    outputs = [p.device_array() for p in planted]
    best, found = float("inf"), 0
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        (prediction,) = task.postprocess(outputs, [geometry])
        best = min(best, time.perf_counter() - t0)
        found = len(prediction) if prediction is not None else 0
    return best * 1000, found


def run() -> list[dict]:
    budget_ms = THREADS * 1000 / YOLO11S_FPS
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for fmt, build, decoder in (
                ("yolox-decoded", postamble_family, {}),
                ("ultralytics", postamble_family, {}),
                ("boxes-scores", postamble_family, {}),
                ("dfl", head_family, {}),
                ("yolov5", head_family, {"anchors": YOLOV5_ANCHORS})):
            folder, planted = build(root, fmt, rng)
            ms, found = postprocess_ms(folder, planted, decoder)
            rows.append({
                "benchmark": f"detect postprocess, {fmt} (640², 80 classes)",
                "axrun": f"{ms:.2f} ms/frame", "baseline": f"{budget_ms:.2f} ms budget",
                "ratio": budget_ms / ms,
                "note": f"{found} detections; budget: {THREADS} host threads at "
                        f"{YOLO11S_FPS} frames/s",
            })
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
