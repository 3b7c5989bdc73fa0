"""Detection: postamble, decoders (YOLOX, Ultralytics, DFL head), NMS, original pixels.

Device outputs are depadded, transposed to NCHW and dequantized, fed to the float
``postprocess_graph.onnx`` (inputs matched by name, else by shape), and its output is
decoded by the configured format:

- ``yolox``: ``[N, anchors, 5 + classes]`` — raw box (cx, cy offsets and log w, h per
  grid cell), objectness and class scores (already sigmoided by the postamble): what
  ``axrun compile`` leaves in a YOLOX postamble.
- ``yolox-decoded``: the same layout with the box already decoded (cx, cy, w, h in
  model-input pixels): what the Voyager SDK's YOLOX postamble gives.
- ``ultralytics``: ``[N, 4 + classes, anchors]`` — cx, cy, w, h in input pixels, then
  class scores (YOLOv8/YOLO11 exports); ``ultralytics-transposed``: ``[N, anchors,
  4 + classes]``, the same values anchor by anchor.
- ``boxes-scores``: two outputs, boxes ``[N, anchors, 4]`` (x1, y1, x2, y2 in input
  pixels) and class scores ``[N, anchors, classes]`` (YOLO-NAS style), either order.
- ``dfl``: no postamble; the device returns per-stride box-distribution maps
  ``[N, 4 * reg_max, H, W]`` and class logits ``[N, classes, H, W]`` (the Ultralytics head).
- ``yolov5``: no postamble; the device returns one raw head per stride,
  ``[N, anchors * (5 + classes), H, W]`` (YOLOv5's Detect convolutions, as the SDK cuts
  them), decoded with the anchors the decoder settings give (YOLOv5's formula:
  ``xy = (2 sigmoid(t) - 0.5 + cell) * stride``, ``wh = (2 sigmoid(t))^2 * anchor``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from axrun.errors import ModelError, ParameterError
from axrun.modelfolder import ModelFolder
from axrun.params import flag, integer, number
from axrun.preprocess import Geometry, PreprocessRecipe
from axrun.results import Detections, Prediction
from axrun.tasks.base import check_task, declared_classes, label_names, preprocess_recipe
from axrun.tasks.postamble import Postamble
from axrun.tasks.preamble import input_writer
from axrun.tensors import depad, dequantize

FORMATS = ("yolox", "yolox-decoded", "ultralytics", "ultralytics-transposed", "boxes-scores",
           "dfl", "yolov5")
# A raw YOLOX box is a few grid cells of offset and a log size; a decoded one is pixels.
# Read raw, candidates with a value past these bounds are pixels; read decoded,
# candidates that all lie within them (every centre within 8 pixels of the top-left
# corner, every box at most 8 pixels) are raw values. Either is an error, not boxes in
# the wrong place (decoder setting check=false turns the check off).
RAW_OFFSET_MAX = 8.0  # cells
RAW_LOG_SIZE_MAX = 8.0  # e^8 cells: thousands of pixels
DEFAULT_STRIDES = (8, 16, 32)
REG_MAX = 16  # bins per box side in the Ultralytics DFL head (YOLOv8/YOLO11)
# YOLOv5's COCO anchors (w, h in input pixels, three per stride 8, 16, 32), from its
# model definitions (models/yolov5s.yaml): what ``anchors=yolov5`` names.
YOLOV5_ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119),
                  (116, 90, 156, 198, 373, 326))
# What decoder settings (axrun.json "decoder", --decoder) may hold.
DECODER_SETTINGS = ("format", "strides", "check", "anchors", "sigmoid", "reg_max")
HEADLESS = ("dfl", "yolov5")  # formats that read the device outputs, no postamble
MAX_NMS = 3000  # candidates kept for NMS (highest scores); bounds the cost at low --conf


@dataclass(frozen=True)
class DetectOptions:
    """NMS and filtering settings (``classes``: ids to keep, None for all)."""

    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 300
    agnostic: bool = False
    classes: frozenset[int] | None = None

    def __post_init__(self) -> None:
        number("conf", self.conf, 0, 1)
        number("iou", self.iou, 0, 1)
        integer("max_det", self.max_det, 1)
        flag("agnostic", self.agnostic)
        if self.classes is not None and any(
                isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in self.classes):
            raise ParameterError("classes", f"must be class ids (0 or more), not "
                                 f"{sorted(self.classes, key=repr)!r}")


def _strides(value: Any) -> tuple[int, ...]:
    """Decoder setting ``strides``: a list of positive pixel strides, finest first."""
    if not isinstance(value, list | tuple) or not value:
        raise ParameterError("decoder", f"strides must be a list of integers, not {value!r}")
    return tuple(integer("decoder strides", s, 1) for s in value)


def _switch(decoder: dict[str, Any], key: str) -> bool:
    """A decoder on/off setting, on unless set to false (or 0)."""
    return decoder.get(key, True) not in (False, "false", 0)


def grid_points(input_hw: tuple[int, int], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell (x, y) of every anchor, level after level, row-major; and each anchor's stride."""
    points, per_anchor = [], []
    for s in strides:
        h, w = input_hw[0] // s, input_hw[1] // s
        ys, xs = np.mgrid[0:h, 0:w]
        points.append(np.stack([xs.ravel(), ys.ravel()], 1))
        per_anchor.append(np.full(h * w, s))
    return np.concatenate(points).astype(np.float32), np.concatenate(per_anchor).astype(np.float32)


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], 1)


def decode_yolox(pred: np.ndarray, input_hw: tuple[int, int],
                 strides: Sequence[int] = DEFAULT_STRIDES, keep: np.ndarray | None = None,
                 grid: tuple[np.ndarray, np.ndarray] | None = None) -> \
        tuple[np.ndarray, np.ndarray]:
    """``[anchors, 5 + C]`` → boxes xyxy (input pixels) and class scores ``[anchors, C]``.

    With ``keep`` (a mask of anchors, those whose objectness exceeds the score threshold:
    class scores are at most 1, so no other anchor can score above it), only those are
    decoded. ``grid``: :func:`grid_points` of ``input_hw`` and ``strides``, when the
    caller keeps it (it is the same for every frame).
    """
    cells, stride = grid or grid_points(input_hw, strides)
    if len(cells) != len(pred):
        raise ModelError(f"yolox output has {len(pred)} anchors; strides {list(strides)} on a "
                         f"{input_hw[1]}x{input_hw[0]} input give {len(cells)}")
    if keep is not None:
        pred, cells, stride = pred[keep], cells[keep], stride[keep]
    xy = (pred[:, :2] + cells) * stride[:, None]
    wh = np.exp(np.minimum(pred[:, 2:4], 20.0)) * stride[:, None]
    boxes = cxcywh_to_xyxy(np.concatenate([xy, wh], 1))
    return boxes, pred[:, 5:] * pred[:, 4:5]


def check_yolox_layout(candidates: np.ndarray, decoded: bool) -> None:
    """Refuse boxes (the first four columns of the ``[anchors, 5 + C]`` rows above the
    score threshold) read with the wrong YOLOX format: raw head
    values that are pixels (read raw, every box would cover the image), or decoded
    boxes that all lie within the raw values' range (raw values read as pixels: tiny
    boxes in the top-left corner). One candidate near the top-left corner can fit both;
    with the objects of a real image, one of them shows.

    Raises:
        ModelError: naming the format the values look like.
    """
    if not len(candidates):
        return
    if not decoded and (np.abs(candidates[:, :2]).max() > RAW_OFFSET_MAX
                        or candidates[:, 2:4].max() > RAW_LOG_SIZE_MAX):
        raise ModelError(
            "the postamble's YOLOX boxes look already decoded (values of "
            f"{np.abs(candidates).max():.0f}, not grid offsets): set decoder format "
            "yolox-decoded (axrun.json, or --decoder format=yolox-decoded)")
    if decoded and np.abs(candidates[:, :2]).max() <= RAW_OFFSET_MAX \
            and np.abs(candidates[:, 2:4]).max() <= RAW_LOG_SIZE_MAX:
        raise ModelError(
            f"the postamble's YOLOX boxes look raw (all {len(candidates)} above the "
            f"threshold lie within {RAW_OFFSET_MAX:g} pixels of the top-left corner, at "
            f"most {RAW_LOG_SIZE_MAX:g} pixels wide): set decoder format yolox "
            "(axrun.json, or --decoder format=yolox), or check=false if they are right")


def check_corners(boxes: np.ndarray, candidates: np.ndarray) -> None:
    """Refuse boxes that are not x1, y1, x2, y2 (a second corner above or left of the
    first, among the candidates): read as corners, they would be wrong boxes.

    Raises:
        ModelError: naming what they look like.
    """
    chosen = boxes[candidates]
    if len(chosen) and ((chosen[:, 2] < chosen[:, 0]) | (chosen[:, 3] < chosen[:, 1])).any():
        raise ModelError("format boxes-scores: the boxes are not x1, y1, x2, y2 (a corner "
                         "comes before its opposite); this layout is not supported yet")


def decode_yolox_decoded(pred: np.ndarray, keep: np.ndarray | None = None) -> \
        tuple[np.ndarray, np.ndarray]:
    """``[anchors, 5 + C]`` with cx, cy, w, h already in input pixels (the Voyager SDK's
    YOLOX postamble) → boxes xyxy and class scores times objectness (of the anchors in
    the ``keep`` mask, if given)."""
    if keep is not None:
        pred = pred[keep]
    return cxcywh_to_xyxy(pred[:, :4]), pred[:, 5:] * pred[:, 4:5]


def decode_ultralytics(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[4 + C, anchors]`` (cx, cy, w, h in input pixels) → boxes xyxy and scores."""
    return cxcywh_to_xyxy(pred[:4].T), pred[4:].T


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise."""
    out: np.ndarray = 1 / (1 + np.exp(-x))
    return out


def logit_threshold(conf: float | None) -> float:
    """The logit below which a sigmoid score cannot exceed ``conf`` (with a margin for
    float rounding: the exact test comes after, on the scores); -inf for None."""
    if conf is None or conf <= 0:
        return -np.inf
    if conf >= 1:
        return np.inf
    return float(np.log(conf / (1 - conf))) - 1e-4


def decode_dfl(
    boxes: Sequence[np.ndarray], logits: Sequence[np.ndarray], input_hw: tuple[int, int],
    strides: Sequence[int] = DEFAULT_STRIDES, conf: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The Ultralytics head in numpy: per level ``[4 * reg_max, H, W]`` distributions and
    ``[C, H, W]`` class logits → boxes xyxy (input pixels) and sigmoid scores.

    With ``conf``, only the cells whose best class scores above it are decoded (no
    other can be a detection): the box distributions' softmax, the costly part, is
    skipped for the rest."""
    threshold = logit_threshold(conf)
    all_boxes, all_scores = [], []
    for box, cls, s in zip(boxes, logits, strides, strict=True):
        reg_max = box.shape[0] // 4
        h, w = box.shape[1:]
        flat = cls.reshape(cls.shape[0], -1)
        cells = np.flatnonzero(flat.max(0) > threshold)
        dist = box.reshape(4, reg_max, h * w)[:, :, cells]
        dist = np.exp(dist - dist.max(1, keepdims=True))
        dist /= dist.sum(1, keepdims=True)
        ltrb = (dist * np.arange(reg_max, dtype=np.float32)[None, :, None]).sum(1)  # (4, n)
        ax, ay = cells % w + 0.5, cells // w + 0.5
        xyxy = np.stack([ax - ltrb[0], ay - ltrb[1], ax + ltrb[2], ay + ltrb[3]], 1) * s
        all_boxes.append(xyxy.astype(np.float32))
        all_scores.append(sigmoid(flat[:, cells].T))
    return np.concatenate(all_boxes), np.concatenate(all_scores).astype(np.float32)


def decode_yolov5(heads: Sequence[np.ndarray], anchors: np.ndarray,
                  strides: Sequence[int], conf: float, apply_sigmoid: bool = True,
                  check: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """YOLOv5 heads, per stride ``[H, W, A * (5 + C)]`` (NHWC, channel ``a * (5 + C) + k``)
    → boxes xyxy (input pixels) and class scores times objectness, of the anchors
    whose objectness is above ``conf`` (no other can score above it).

    ``anchors``: ``[levels, A, 2]`` (w, h in input pixels). ``apply_sigmoid``: the heads
    are logits (the Detect layer's sigmoid is cut off with it); False when the device
    already applies it. With ``check``, values that contradict it are an error.

    Raises:
        ModelError: the heads look already sigmoided (or, with ``sigmoid`` False, like
            logits).
    """
    threshold = logit_threshold(conf) if apply_sigmoid else conf
    all_boxes, all_scores = [], []
    for head, level, s in zip(heads, anchors, strides, strict=True):
        h, w, _ = head.shape
        x = head.reshape(h, w, len(level), -1)
        objectness = x[..., 4]
        if check:
            _check_yolov5_activation(objectness, apply_sigmoid)
        cy, cx, a = np.nonzero(objectness > threshold)
        t = x[cy, cx, a]
        if apply_sigmoid:
            t = sigmoid(t)
        xy = (t[:, :2] * 2 - 0.5 + np.stack([cx, cy], 1)) * s
        wh = (t[:, 2:4] * 2) ** 2 * level[a]
        all_boxes.append(cxcywh_to_xyxy(np.concatenate([xy, wh], 1)))
        all_scores.append(t[:, 5:] * t[:, 4:5])
    return (np.concatenate(all_boxes).astype(np.float32),
            np.concatenate(all_scores).astype(np.float32))


def _check_yolov5_activation(objectness: np.ndarray, apply_sigmoid: bool) -> None:
    """Logits of a real head reach well below 0; sigmoided values never leave [0, 1]."""
    low, high = float(objectness.min()), float(objectness.max())
    if apply_sigmoid and low >= 0 and high <= 1:
        raise ModelError("the YOLOv5 heads look already sigmoided (every objectness in "
                         "[0, 1]): set decoder sigmoid=false (axrun.json, or --decoder "
                         "sigmoid=false), or check=false if they are logits")
    if not apply_sigmoid and (low < -0.01 or high > 1.01):
        raise ModelError(f"the YOLOv5 heads look like logits (objectness from {low:.2f} to "
                         f"{high:.2f}), not probabilities: set decoder sigmoid=true")


def yolov5_anchors(value: Any, strides: Sequence[int]) -> np.ndarray:
    """Decoder setting ``anchors`` → ``[levels, A, 2]``: ``"yolov5"`` (YOLOv5's COCO
    anchors), or one list per stride of w, h pairs (flat, as YOLOv5's YAML writes them,
    or as pairs).

    Raises:
        ModelError: no anchors, or not one list per stride of the same number of pairs.
    """
    example = "e.g. --decoder anchors=yolov5 (YOLOv5's COCO anchors) or anchors=" \
        "[[10,13,16,30,33,23],[30,61,62,45,59,119],[116,90,156,198,373,326]]"
    if value is None:
        raise ModelError("the device gives one raw head per stride (YOLOv5 style): its anchors "
                         "are not in the model folder; give them in axrun.json's decoder or "
                         f"with {example}")
    if value == "yolov5":
        value = YOLOV5_ANCHORS
    try:
        levels = [np.asarray(level, np.float32).reshape(-1, 2) for level in value]
    except (TypeError, ValueError):
        raise ModelError(f"decoder anchors must be one list of w, h per stride ({example}), "
                         f"not {value!r}") from None
    if len(levels) != len(strides) or len({len(a) for a in levels}) != 1 \
            or not len(levels[0]) or any((a <= 0).any() for a in levels):
        raise ModelError(f"decoder anchors must give the same number of positive w, h pairs "
                         f"for each of the {len(strides)} strides {list(strides)}, not {value!r}")
    return np.stack(levels)


def nms(boxes: np.ndarray, scores: np.ndarray, class_id: np.ndarray, iou: float,
        agnostic: bool, max_det: int) -> np.ndarray:
    """Greedy NMS through OpenCV (``cv2.dnn.NMSBoxesBatched``, or ``NMSBoxes`` when
    ``agnostic``): a box is dropped when its IoU with a better-scoring kept box of its
    class (any class, agnostic) is above ``iou``. Returns kept indices, best first.

    OpenCV's gave the same indices, in the same order, as axrun's earlier numpy loop on
    clustered candidates (100, 1,000 and 3,000 of them), 2.6 to 9.6 times faster. A box
    without area (x2 <= x1 or y2 <= y1) overlaps nothing and is kept, as there; OpenCV
    would let it suppress unrelated boxes, so it does not see them.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    flat = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    solid = np.flatnonzero(~flat)
    xywh = np.concatenate([boxes[solid, :2], boxes[solid, 2:4] - boxes[solid, :2]],
                          1).astype(np.float32)
    score = scores[solid].astype(np.float32)
    if not len(solid):
        kept = np.zeros(0, np.int64)
    elif agnostic:
        kept = np.asarray(cv2.dnn.NMSBoxes(xywh, score, 0.0, iou),  # type: ignore[arg-type]
                          np.int64).reshape(-1)
    else:
        ids = class_id[solid].astype(np.int32)
        kept = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, score, ids, 0.0, iou),  # type: ignore[arg-type]
                          np.int64).reshape(-1)
    out = np.concatenate([solid[kept], np.flatnonzero(flat)])
    order = np.argsort(-scores[out], kind="stable")
    result: np.ndarray = out[order][:max_det]
    return result


def select(boxes: np.ndarray, scores: np.ndarray, options: DetectOptions) -> Detections:
    """Best class per anchor, confidence (strictly above ``conf``) and class filters,
    at most :data:`MAX_NMS` candidates, NMS. Boxes in input pixels."""
    class_id = scores.argmax(1)
    conf = scores[np.arange(len(scores)), class_id]
    mask = conf > options.conf
    if options.classes is not None:
        mask &= np.isin(class_id, list(options.classes))
    boxes, conf, class_id = boxes[mask], conf[mask], class_id[mask]
    if len(conf) > MAX_NMS:
        top = np.argpartition(-conf, MAX_NMS)[:MAX_NMS]
        boxes, conf, class_id = boxes[top], conf[top], class_id[top]
    keep = nms(boxes, conf, class_id, options.iou, options.agnostic, options.max_det)
    return Detections(boxes[keep].astype(np.float32), conf[keep].astype(np.float32),
                      class_id[keep].astype(np.int64))


def detect_format(pred_shape: Sequence[int], classes: int | None,
                  axrun_compiled: bool = True, cells: int | None = None) -> str:
    """The layout of a postamble's one output ``[N, a, b]`` (a dimension without a
    fixed size given as 0): ``yolox`` (``yolox-decoded`` in a folder without
    ``axrun.json``: the Voyager SDK's YOLOX postamble decodes; the values are checked
    against that when they come, :func:`check_yolox_layout`), ``ultralytics`` or
    ``ultralytics-transposed``.

    The anchor axis is the one holding a multiple of ``cells`` (the grid cells of the
    input at the strides; any size when None); the other axis must hold 5 + classes
    (YOLOX) or 4 + classes (Ultralytics). Only one layout may fit.

    Raises:
        ModelError: no layout fits, or several do (the message names ``--decoder``).
    """
    if len(pred_shape) != 3:
        raise ModelError(f"the postamble's output {list(pred_shape)} is not [N, a, b], the "
                         f"layout every single-output format reads ({', '.join(FORMATS[:4])})")
    _, a, b = pred_shape
    yolox = "yolox" if axrun_compiled else "yolox-decoded"

    def anchors(d: int) -> bool:
        return d > 0 and (cells is None or d % cells == 0)

    grid = f" ({cells} cells at the strides; --decoder strides=[...] if the model's differ)" \
        if cells else ""
    if classes is not None:
        fits = [fmt for fmt, ok in ((yolox, anchors(a) and b == 5 + classes),
                                    ("ultralytics", anchors(b) and a == 4 + classes),
                                    ("ultralytics-transposed", anchors(a) and b == 4 + classes))
                if ok]
        if len(fits) == 1:
            return fits[0]
        if fits:
            raise ModelError(f"the postamble's output {list(pred_shape)} fits both {fits[0]} and "
                             f"{fits[1]} for {classes} classes: give --decoder format=...")
        raise ModelError(
            f"the postamble's output {list(pred_shape)} fits no known layout for the "
            f"model's {classes} classes{grid}: give --decoder format=... (or the right "
            "--labels)")
    if anchors(b) and not anchors(a) and a > 4:
        return "ultralytics"  # [N, 4 + classes, anchors]
    if anchors(a) and not anchors(b) and b > 5:
        # [N, anchors, k]: YOLOX (5 + C) or Ultralytics transposed (4 + C); only the
        # number of classes tells them apart, and reading one as the other gives wrong
        # boxes.
        raise ModelError(
            f"the postamble's output {list(pred_shape)} is YOLOX ([N, anchors, 5 + classes]) "
            "or Ultralytics transposed ([N, anchors, 4 + classes]), and the model's classes "
            f"are unknown (no labels): give --decoder format={yolox} or "
            "format=ultralytics-transposed, or --labels")
    raise ModelError(f"cannot tell the anchors from the values in the postamble's output "
                     f"{list(pred_shape)}{grid}: give --decoder format=... and --labels")


class Detector:
    """The detection task for the engine."""

    def __init__(
        self,
        folder: ModelFolder,
        *,
        recipe: PreprocessRecipe | None = None,
        options: DetectOptions | None = None,
        labels: tuple[str, ...] | None = None,
        decoder: dict[str, Any] | None = None,
    ) -> None:
        check_task(folder, "detect")
        self.options = options or DetectOptions()
        self.preprocessor = input_writer(folder, recipe or preprocess_recipe(folder, "detect"))
        self.input_hw = self.preprocessor.size_hw  # the preamble's input, when there is one
        decoder = {**(folder.sidecar.decoder if folder.sidecar else {}), **(decoder or {})}
        unknown = sorted(set(decoder) - set(DECODER_SETTINGS))
        if unknown:  # a misspelt setting would be left out without a word
            raise ParameterError("decoder", f"has unknown setting(s) {', '.join(unknown)}; "
                                 f"the settings are {', '.join(DECODER_SETTINGS)}")
        self.strides = _strides(decoder.get("strides", DEFAULT_STRIDES))
        self._check = _switch(decoder, "check")
        self.postamble = Postamble(folder) if folder.postamble_path else None
        self.specs = folder.manifest.outputs
        fmt = decoder.get("format")
        #: why this format: shown by ``axrun info``
        self.format_reason = "decoder.format says so (axrun.json or --decoder)"
        if fmt is None and self.postamble is None:
            fmt, self.format_reason = self._headless_format(decoder)
        if fmt is not None and fmt not in FORMATS:
            raise ModelError(f"decoder format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        if fmt in HEADLESS and self.postamble is not None:
            raise ModelError(f"decoder.format {fmt} is for models compiled without a postamble")
        if fmt not in (None, *HEADLESS) and self.postamble is None:
            raise ModelError(f"decoder.format {fmt} needs a postprocess_graph.onnx")
        classes = declared_classes(folder, labels)
        shapes = self.postamble.output_shapes if self.postamble else []
        if fmt is None and len(shapes) == 2:
            fmt, self.format_reason = "boxes-scores", "the postamble gives two outputs"
        # the anchors' cells and strides: the same for every frame
        grid = grid_points(self.input_hw, self.strides)
        if fmt is None:
            fmt = detect_format(shapes[0], classes, axrun_compiled=folder.sidecar is not None,
                                cells=len(grid[0]))
            origin = ("a folder axrun compile wrote" if folder.sidecar is not None else
                      "a folder without axrun.json (the Voyager SDK decodes YOLOX boxes)")
            self.format_reason = (f"the postamble's output {shapes[0]} with {classes} "
                                  f"classes" + (f", in {origin}" if "yolox" in fmt else ""))
        if fmt == "boxes-scores":
            assert self.postamble is not None
            self._box_output = self.boxes_scores_layout(shapes, self.postamble.output_names)
            classes = shapes[1 - self._box_output][2]  # the scores' columns
        elif len(shapes) > 1:
            raise ModelError(f"the postamble gives {len(shapes)} outputs; format {fmt} reads "
                             "one: set the format that reads them all (--decoder format=...)")
        if "yolox" in fmt and recipe is None and folder.sidecar is None:
            raise ModelError(
                f"{folder.root} holds a YOLOX model without axrun.json, and the SDK's YOLOX "
                "deployments normalize differently (v1.2.5's template with ImageNet mean/std, "
                "newer ones feed 0-255 pixels): give its preprocessing (--mean and --std, "
                "e.g. --mean 0 --std 1 for 0-255 pixels; in Python, recipe=axrun.preprocess_"
                "recipe(folder, 'detect', mean=0, std=1)) or write it in axrun.json")
        self.format = fmt
        self._grid = grid if fmt == "yolox" else None
        if fmt == "dfl":
            self._dfl_levels = self._dfl_layout(integer("reg_max",
                                                        decoder.get("reg_max", REG_MAX), 1))
            classes = self.specs[self._dfl_levels[0][1]].unpadded_shape[3]
        if fmt == "yolov5":
            self._anchors = yolov5_anchors(decoder.get("anchors"), self.strides)
            self._heads, classes = self._yolov5_layout(len(self._anchors[0]))
            self._sigmoid = _switch(decoder, "sigmoid")
        if fmt in HEADLESS:
            self._check_all_read(fmt)
        columns = {"yolox": (2, 5), "yolox-decoded": (2, 5), "ultralytics": (1, 4),
                   "ultralytics-transposed": (2, 4)}.get(fmt)
        if columns and len(shapes[0]) == 3 and shapes[0][columns[0]] > columns[1]:
            classes = shapes[0][columns[0]] - columns[1]  # what the output holds
        self.labels = label_names(folder, labels, classes) if classes else (labels or ())
        wanted = self.options.classes or frozenset()
        if classes and any(c >= classes for c in wanted):
            raise ParameterError("classes", f"ids must be below {classes} (the model's classes)")

    @staticmethod
    def boxes_scores_layout(shapes: list[list[int]], names: list[str]) -> int:
        """Which of the two postamble outputs holds the boxes ``[N, A, 4]`` (the other:
        scores ``[N, A, C]``): the one of 4 columns, or when both have 4 (4 classes),
        the one whose name says ``box``."""
        if len(shapes) != 2 or any(len(s) != 3 for s in shapes) or \
                shapes[0][1] != shapes[1][1]:
            raise ModelError(f"format boxes-scores needs two outputs [N, anchors, 4] and "
                             f"[N, anchors, classes]; the postamble gives {shapes}")
        fours = [i for i, s in enumerate(shapes) if s[2] == 4]
        if len(fours) == 2:
            fours = [i for i, n in enumerate(names) if "box" in n.lower()]
        if len(fours) != 1:
            raise ModelError(f"format boxes-scores: cannot tell boxes from scores in "
                             f"{dict(zip(names, shapes, strict=True))}")
        return fours[0]

    def _at_stride(self, stride: int) -> list[int]:
        """The device outputs whose size is the input's at ``stride``."""
        hw = (self.input_hw[0] // stride, self.input_hw[1] // stride)
        return [i for i, o in enumerate(self.specs) if o.unpadded_shape[1:3] == hw]

    def _headless_format(self, decoder: dict[str, Any]) -> tuple[str, str]:
        """Without a postamble: one raw head per stride is YOLOv5's (anchors), two (box
        distributions, class logits) the Ultralytics head's (DFL)."""
        if "anchors" in decoder:
            return "yolov5", "no postamble, and decoder anchors are given"
        if all(len(self._at_stride(s)) == 1 for s in self.strides):
            return "yolov5", "no postamble, and one raw head per stride (YOLOv5 style)"
        return "dfl", "no postamble: the device returns the Ultralytics head"

    def _yolov5_layout(self, anchors: int) -> tuple[list[int], int]:
        """The device output of each stride, and the number of classes their channels
        (``anchors * (5 + classes)``) give."""
        heads, classes = [], set()
        for s in self.strides:
            here = self._at_stride(s)
            if len(here) != 1:
                raise ModelError(f"yolov5 decode: expected one device output of the input's "
                                 f"size / {s} for stride {s}, found {len(here)}")
            channels = self.specs[here[0]].unpadded_shape[3]
            if channels % anchors or channels // anchors <= 5:
                raise ModelError(f"yolov5 decode: the stride-{s} head has {channels} channels,"
                                 f" not {anchors} anchors x (5 + classes)")
            heads.append(here[0])
            classes.add(channels // anchors - 5)
        if len(classes) != 1:
            raise ModelError(f"yolov5 decode: the heads disagree on the classes: {sorted(classes)}")
        return heads, classes.pop()

    def _check_all_read(self, fmt: str) -> None:
        """Refuse device outputs that no stride reads (a 4th stride's heads, say): their
        detections would be missing without a word."""
        read = {i for s in self.strides for i in self._at_stride(s)}
        unread = [i for i in range(len(self.specs)) if i not in read]
        if unread:
            sizes = [self.specs[i].unpadded_shape[1:3] for i in unread]
            raise ModelError(f"{fmt} decode: device output(s) {unread} (sizes {sizes}) fit no "
                             f"stride of {list(self.strides)} on the {self.input_hw[1]}x"
                             f"{self.input_hw[0]} input: set --decoder strides=[...] "
                             "(e.g. [8,16,32,64] for a P6 model)")

    def _dfl_layout(self, reg_max: int) -> list[tuple[int, int]]:
        """(box head, class head) per stride: the box head has ``4 * reg_max`` channels
        (Ultralytics' reg_max is 16); when both have (64 classes), the first, as the
        SDK writes the box heads first."""
        levels = []
        for s in self.strides:
            here = self._at_stride(s)
            if len(here) != 2:
                raise ModelError(f"dfl decode: expected 2 device outputs of the input's size "
                                 f"/ {s} for stride {s}, found {len(here)}")
            channels = [self.specs[i].unpadded_shape[3] for i in here]
            if 4 * reg_max not in channels:
                raise ModelError(f"dfl decode: no box head of {4 * reg_max} channels (4 x "
                                 f"reg_max {reg_max}) at stride {s}, whose outputs have "
                                 f"{channels}: set --decoder reg_max=...")
            box = channels.index(4 * reg_max)
            levels.append((here[box], here[1 - box]))
        return levels

    def preprocess(self, image: np.ndarray, slots: list[np.ndarray]) -> Geometry:
        return self.preprocessor(image, slots[0])

    def _dequantized(self, outputs: list[np.ndarray], index: int, slot: int) -> np.ndarray:
        """Device output ``index`` of batch slot ``slot``: depadded, float, ``[H, W, C]``."""
        spec = self.specs[index]
        return dequantize(depad(outputs[index][slot], spec.padding[1:]), spec.scale,
                          spec.zero_point)

    def _decode_slot(self, slot: int, outputs: list[np.ndarray],
                     post: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        if self.format == "yolov5":
            heads = [self._dequantized(outputs, i, slot) for i in self._heads]
            return decode_yolov5(heads, self._anchors, self.strides, self.options.conf,
                                 self._sigmoid, self._check)
        if self.format == "dfl":
            boxes: list[np.ndarray] = []
            logits: list[np.ndarray] = []
            for b, c in self._dfl_levels:
                for idx, acc in ((b, boxes), (c, logits)):
                    acc.append(self._dequantized(outputs, idx, slot).transpose(2, 0, 1))
            return decode_dfl(boxes, logits, self.input_hw, self.strides, self.options.conf)
        assert post is not None
        return self.decode(post, slot)

    def decode(self, post: list[np.ndarray], slot: int, fmt: str | None = None,
               box_output: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Boxes xyxy (input pixels) and class scores ``[anchors, C]`` of batch slot
        ``slot`` from float outputs laid out as ``fmt`` (default: this model's format,
        which must read a postamble's outputs); ``box_output``: which of two outputs
        holds the boxes (``boxes-scores``; default: this model's). Used on the postamble's
        outputs, and on a float network's (:mod:`axrun.fidelity`).

        Raises:
            ModelError: the values do not look like ``fmt`` (see :func:`check_yolox_layout`).
        """
        fmt = fmt or self.format
        if fmt == "boxes-scores":
            boxes = self._box_output if box_output is None else box_output
            corners, class_scores = post[boxes][slot], post[1 - boxes][slot]
            check_corners(corners, class_scores.max(1) > self.options.conf)
            return corners, class_scores
        if fmt == "ultralytics-transposed":
            return decode_ultralytics(post[0][slot].T)
        if fmt in ("yolox", "yolox-decoded"):
            pred, decoded = post[0][slot], fmt == "yolox-decoded"
            keep = pred[:, 4] > self.options.conf  # once per frame, for the check too
            if self._check:
                check_yolox_layout(pred[keep, :4], decoded)
            if decoded:
                return decode_yolox_decoded(pred, keep)
            return decode_yolox(pred, self.input_hw, self.strides, keep,
                                self._grid or grid_points(self.input_hw, self.strides))
        return decode_ultralytics(post[0][slot])

    def detections(self, boxes: np.ndarray, scores: np.ndarray,
                   geometry: Geometry) -> Detections:
        """NMS and filters (:func:`select`) on decoded ``boxes`` and ``scores``, the kept
        boxes mapped to the original image's pixels, with their labels.

        Raises:
            ModelError: a score above 1 (the output is not laid out as the format reads).
        """
        found = select(boxes, scores, self.options)
        if self._check and len(found) and found.confidence[0] > 1.001:
            raise ModelError(
                f"format {self.format}: a score of {found.confidence[0]:.3g}, not a "
                "probability: the output is not laid out as this format reads it (wrong "
                "format, or wrong number of classes?); --decoder check=false if it is")
        labels = tuple(self.labels[i] if i < len(self.labels) else f"class_{i}"
                       for i in found.class_id)
        return Detections(geometry.to_original(found.xyxy), found.confidence,
                          found.class_id, labels)

    def postprocess(self, outputs: list[np.ndarray],
                    geometries: list[Geometry | None]) -> list[Prediction | None]:
        post = self.postamble(outputs) if self.postamble is not None else None
        results: list[Prediction | None] = []
        for slot, geometry in enumerate(geometries):
            if geometry is None:
                results.append(None)
                continue
            boxes, scores = self._decode_slot(slot, outputs, post)
            results.append(self.detections(boxes, scores, geometry))
        return results
