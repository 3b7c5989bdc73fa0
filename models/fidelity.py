"""INT8-vs-float fidelity of the bundled models on real photos (run by ``make models``).

INT8 results come from the real axrun path (engine + emulator + tasks); float
results from ONNX Runtime on the float models with the same preprocessing and the
same decoding.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort

from axrun.compiler.quantize import float_input
from axrun.engine import Engine, EngineConfig
from axrun.images import decode_image
from axrun.sources import Item
from axrun.tasks.classify import Classifier, softmax
from axrun.tasks.detect import Detections, Detector, decode_yolox, select

MARK_BEGIN = "<!-- fidelity:begin -->"
MARK_END = "<!-- fidelity:end -->"
# What the bundled models must get right (issue: INT8 top-1 equals float top-1 on
# these; the detector finds these objects within 0.5 IoU of the float box).
CLASSIFY_MUST = {"coffee": {967}, "camera": {872}, "chelsea": {281, 282, 285}}
DETECT_MUST = {"astronaut": "person", "camera": "person", "coffee": "cup", "chelsea": "cat",
               "stereo_motorcycle": "motorcycle"}


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of ``boxes`` (N, 4), pixels."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    union = ((box[2] - box[0]) * (box[3] - box[1])
             + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _photos(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"))


def classification_rows(float_model: Path, folder: Path, samples: Path) -> tuple[list[str], bool]:
    sess = ort.InferenceSession(str(float_model), providers=["CPUExecutionProvider"])
    rows, ok = [], True
    with Engine(folder, backend="emulator", config=EngineConfig(decode="full")) as engine:
        task = Classifier(engine.folder, top_k=5)
        photos = _photos(samples)
        int8 = list(engine.run(task, [Item(str(p)) for p in photos]))
        for path, res in zip(photos, int8, strict=True):
            x = float_input(decode_image(path), task.preprocessor.recipe, (1, 3, 224, 224))
            probs = softmax(sess.run(None, {sess.get_inputs()[0].name: x})[0][0])
            f_top = list(np.argsort(-probs)[:5])
            top = res.classification
            assert top is not None
            q_top = list(top.class_id)
            agree = f_top[0] == q_top[0]
            overlap = len(set(f_top) & set(q_top))
            must = CLASSIFY_MUST.get(path.stem)
            passed = must is None or (agree and q_top[0] in must)
            ok &= passed
            rows.append(
                f"| {path.stem} | {task.labels[f_top[0]]} {probs[f_top[0]]:.2f} | "
                f"{top.label[0]} {top.confidence[0]:.2f} | "
                f"{'yes' if agree else 'no'} | {overlap}/5 |"
                + (f" {'pass' if passed else 'FAIL'} |" if must else " |")
            )
    return rows, ok


def _float_detections(sess: ort.InferenceSession, image: np.ndarray, task: Detector) -> \
        Detections:
    x = float_input(image, task.preprocessor.recipe, (1, 3, *task.input_hw))
    pred = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
    boxes, scores = decode_yolox(pred, task.input_hw, task.strides)
    found = select(boxes, scores, task.options)
    geometry = task.preprocessor(image, task.preprocessor.new_buffer()[0])
    return Detections(geometry.to_original(found.xyxy), found.confidence, found.class_id)


def _class_names(labels: tuple[str, ...], found: Detections) -> str:
    return ", ".join(sorted({labels[c] for c in found.class_id})) or "-"


def detection_rows(float_model: Path, folder: Path, samples: Path) -> tuple[list[str], bool]:
    sess = ort.InferenceSession(str(float_model), providers=["CPUExecutionProvider"])
    rows, ok = [], True
    with Engine(folder, backend="emulator", config=EngineConfig(decode="full")) as engine:
        task = Detector(engine.folder)
        photos = _photos(samples)
        int8 = list(engine.run(task, [Item(str(p)) for p in photos]))
        for path, res in zip(photos, int8, strict=True):
            ref = _float_detections(sess, decode_image(path), task)
            got = res.detections
            assert got is not None
            ious, same = [], 0
            for box, cls in zip(ref.xyxy, ref.class_id, strict=True):
                if len(got):
                    iou = iou_one_to_many(box, got.xyxy)
                    best = int(iou.argmax())
                    ious.append(float(iou[best]))
                    same += int(got.class_id[best] == cls)
            must = DETECT_MUST.get(path.stem)
            verdict = ""
            if must:
                cid = task.labels.index(must)
                f_boxes = ref.xyxy[ref.class_id == cid]
                q_boxes = got.xyxy[got.class_id == cid]
                best = float(iou_one_to_many(f_boxes[0], q_boxes).max()) \
                    if len(f_boxes) and len(q_boxes) else 0.0
                passed = best >= 0.5
                ok &= passed
                verdict = f"{must} IoU {best:.2f} {'pass' if passed else 'FAIL'}"
            rows.append(
                f"| {path.stem} | {len(ref)}: {_class_names(task.labels, ref)} | "
                f"{len(got)}: {_class_names(task.labels, got)} | "
                f"{np.mean(ious) if ious else float('nan'):.2f} | {same}/{len(ref)} | {verdict} |"
            )
    return rows, ok


def report(effnet: Path, yolox: Path, cls: Path, det: Path, samples: Path, readme: Path) -> None:
    c_rows, c_ok = classification_rows(effnet, cls, samples)
    d_rows, d_ok = detection_rows(yolox, det, samples)
    text = "\n".join([
        MARK_BEGIN,
        "Classification, `efficientnet-lite0-imagenet` (float ONNX vs INT8 on the emulator):",
        "",
        "| photo | float top-1 | INT8 top-1 | top-1 agrees | top-5 overlap | required |",
        "|---|---|---|---|---|---|",
        *c_rows,
        "",
        "Detection, `yolox-nano-coco` (conf 0.25, IoU 0.45; each float box matched to the "
        "INT8 box of highest IoU):",
        "",
        "| photo | float boxes | INT8 boxes | mean matched IoU | class agrees | required |",
        "|---|---|---|---|---|---|",
        *d_rows,
        MARK_END,
    ])
    print(text)
    body = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), re.S)
    readme.write_text(pattern.sub(lambda _: text, body) if pattern.search(body)
                      else body + "\n" + text + "\n", encoding="utf-8")
    if not (c_ok and d_ok):
        raise SystemExit("error: the INT8 models miss a required result (see FAIL above)")
