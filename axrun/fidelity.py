"""INT8 against float: does a compiled model still answer as the float network it was
compiled from, on given images?

The INT8 answers come from the real path (:class:`~axrun.engine.Engine`: preprocessing,
device or emulator, postamble, task decoding; full-size decoding). The float answers
come from the float ONNX model run by ONNX Runtime on the same pixels, preprocessed
with the same recipe in float (:func:`~axrun.preprocess.network_input`) and decoded by
the same task code, so that only the quantization differs.

Measures (:class:`Tally`):

- classify: **top-1 agreement** (INT8 top-1 = float top-1), **top-5 agreement** (the
  float top-1 among INT8's top 5) and the **mean absolute score difference** of the
  float top-1 class (probabilities, 0-1).
- detect: every float box is matched to an unmatched INT8 box of the same class with
  IoU ≥ 0.5 (the PASCAL VOC / COCO AP50 criterion), float boxes by confidence,
  best IoU first. **Recall**: float boxes matched; **precision**: INT8 boxes matched;
  **mean IoU** of the matched pairs. Both use the same thresholds (conf, NMS IoU).

The **agreement** of a run is the top-1 agreement (classify), or the F1 score of box
recall and precision (detect).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axrun.compiler.sensitivity import LayerReport
from axrun.compiler.writer import FIDELITY
from axrun.engine import Engine, EngineConfig
from axrun.errors import InputError, ModelError, OutputError
from axrun.modelfolder import ModelFolder, load_model_folder, read_json
from axrun.preprocess import PreprocessRecipe, network_input
from axrun.results import Classification, Detections
from axrun.sources import Item
from axrun.tasks import make_task, task_name
from axrun.tasks.classify import SCORE_KINDS, Classifier
from axrun.tasks.detect import Detector, detect_format
from axrun.tasks.postamble import last_computing_op
from axrun.tensors import TensorSpec

FIDELITY_FILE = FIDELITY  # written into a model folder by compile and check --save
IOU_MATCH = 0.5
# where the float side's recipe came from, when it is the INT8 folder's own
FOLDER_RECIPE = "the INT8 folder's: a wrong recipe in it does not show in these figures"
TOP_K = 5
FIDELITY_VERSION = 1


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of ``boxes`` ``(N, 4)`` (same units, e.g. pixels)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    union = ((box[2] - box[0]) * (box[3] - box[1])
             + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_boxes(reference: Detections, found: Detections, iou: float = IOU_MATCH) -> \
        list[tuple[int, int, float]]:
    """``(reference index, found index, IoU)`` of each matched pair: reference boxes in
    order of confidence, each to the unmatched found box of its class with the highest
    IoU, if that is at least ``iou``."""
    pairs: list[tuple[int, int, float]] = []
    taken = np.zeros(len(found), bool)
    for i in np.argsort(-reference.confidence, kind="stable"):
        same = (found.class_id == reference.class_id[i]) & ~taken
        if not same.any():
            continue
        ious = np.where(same, box_iou(reference.xyxy[i], found.xyxy), -1.0)
        j = int(ious.argmax())
        if ious[j] >= iou:
            taken[j] = True
            pairs.append((int(i), j, float(ious[j])))
    return pairs


def _box(d: Detections, i: int) -> dict[str, Any]:
    return {"label": d.label[i] if i < len(d.label) else f"class_{d.class_id[i]}",
            "id": int(d.class_id[i]), "score": round(float(d.confidence[i]), 4),
            "box": [round(float(v), 1) for v in d.xyxy[i]]}


def _top(c: Classification, i: int = 0) -> dict[str, Any]:
    return {"label": c.label[i], "id": int(c.class_id[i]),
            "score": round(float(c.confidence[i]), 4)}


@dataclass(frozen=True)
class Comparison:
    """One image: whether INT8 agrees with float, and the details (JSON-ready)."""

    source: str
    frame: int | None
    agrees: bool
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, figures rounded to 4 decimals."""
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in self.detail.items()}
        return {"source": self.source, "frame": self.frame, "agrees": self.agrees, **rounded}


def compare_classification(float_: Classification, int8: Classification) -> dict[str, Any]:
    """Classify details: both top-1s, whether the float top-1 is in INT8's top 5, and
    the absolute difference of its probability. ``int8`` must hold every class."""
    top1 = int(float_.class_id[0])
    where = np.flatnonzero(int8.class_id == top1)
    int8_score = float(int8.confidence[where[0]]) if len(where) else 0.0
    return {"float": _top(float_), "int8": _top(int8),
            "float_top1_in_int8_top5": bool(len(where) and where[0] < TOP_K),
            "score_diff": abs(int8_score - float(float_.confidence[0]))}


def compare_detections(float_: Detections, int8: Detections) -> dict[str, Any]:
    """Detect details: box counts, matched pairs' mean IoU, float boxes INT8 missed and
    INT8 boxes float does not have (see :func:`match_boxes`)."""
    pairs = match_boxes(float_, int8)
    matched_f = {i for i, _, _ in pairs}
    matched_q = {j for _, j, _ in pairs}
    return {"float_boxes": len(float_), "int8_boxes": len(int8), "matched": len(pairs),
            "float_labels": sorted(set(float_.label)), "int8_labels": sorted(set(int8.label)),
            "mean_iou": float(np.mean([p[2] for p in pairs])) if pairs else None,
            "missed": [_box(float_, i) for i in range(len(float_)) if i not in matched_f],
            "extra": [_box(int8, j) for j in range(len(int8)) if j not in matched_q]}


@dataclass
class Tally:
    """The run's figures, added up image by image (nothing else kept)."""

    task: str
    images: int = 0
    failed: int = 0
    agreeing: int = 0
    top5: int = 0
    score_diff: float = 0.0
    float_boxes: int = 0
    int8_boxes: int = 0
    matched: int = 0
    iou_sum: float = 0.0

    def add(self, comparison: Comparison) -> None:
        d = comparison.detail
        self.images += 1
        self.agreeing += comparison.agrees
        if self.task == "classify":
            self.top5 += d["float_top1_in_int8_top5"]
            self.score_diff += d["score_diff"]
        else:
            self.float_boxes += d["float_boxes"]
            self.int8_boxes += d["int8_boxes"]
            self.matched += d["matched"]
            self.iou_sum += (d["mean_iou"] or 0.0) * d["matched"]

    @property
    def agreement(self) -> float | None:
        """Top-1 agreement (classify) or box F1 (detect), 0-1; None before any image, or
        when neither side found a box (nothing was compared)."""
        if not self.images:
            return None
        if self.task == "classify":
            return self.agreeing / self.images
        boxes = self.float_boxes + self.int8_boxes
        return None if boxes == 0 else 2 * self.matched / boxes  # no boxes: nothing compared

    def metrics(self) -> dict[str, float | None]:
        n = self.images or None

        def ratio(a: float, b: float | None) -> float | None:
            return round(a / b, 4) if b else None

        if self.task == "classify":
            return {"top1_agreement": ratio(self.agreeing, n),
                    "top5_agreement": ratio(self.top5, n),
                    "mean_abs_score_diff": ratio(self.score_diff, n)}
        return {"recall": ratio(self.matched, self.float_boxes or None),
                "precision": ratio(self.matched, self.int8_boxes or None),
                "mean_iou": ratio(self.iou_sum, self.matched or None),
                "box_f1": None if self.agreement is None else round(self.agreement, 4),
                "float_boxes": self.float_boxes, "int8_boxes": self.int8_boxes,
                "matched_boxes": self.matched}

    def summary(self) -> str:
        """One line, e.g. ``6 images: top-1 agreement 5/6 (83.3%), top-5 6/6, mean
        score difference 0.021``."""
        head = f"{self.images} image(s) compared" + (
            f", {self.failed} input(s) failed" if self.failed else "")
        if not self.images:
            return head
        if self.task == "classify":
            return (f"{head}: top-1 agreement {self.agreeing}/{self.images} "
                    f"({100 * self.agreeing / self.images:.1f}%), top-5 {self.top5}/"
                    f"{self.images}, mean score difference {self.score_diff / self.images:.3f}")
        m = self.metrics()
        fmt = "{:.3f}".format
        return (f"{head}: {self.float_boxes} float box(es), {self.int8_boxes} INT8, "
                f"{self.matched} matched at IoU ≥ {IOU_MATCH}: recall "
                f"{'-' if m['recall'] is None else fmt(m['recall'])}, precision "
                f"{'-' if m['precision'] is None else fmt(m['precision'])}, mean IoU "
                f"{'-' if m['mean_iou'] is None else fmt(m['mean_iou'])}, box F1 "
                f"{'-' if self.agreement is None else fmt(self.agreement)}")

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "summary": self.summary(), "images": self.images,
                "failed": self.failed,
                "agreement": None if self.agreement is None else round(self.agreement, 4),
                "metrics": self.metrics()}


def disagreement_text(d: dict[str, Any]) -> str:
    """One line saying how INT8 and float differ on an image (``d``: a
    :meth:`Comparison.to_dict`)."""
    where = d["source"] + (f" frame {d['frame']}" if d["frame"] is not None else "")
    if "float" in d:
        f, q = d["float"], d["int8"]
        return (f"{where}: float {f['label']} {f['score']:.2f}, INT8 {q['label']} "
                f"{q['score']:.2f}")

    def boxes(items: list[dict[str, Any]]) -> str:
        return ", ".join(f"{b['label']} {b['score']:.2f}" for b in items)

    parts = ([f"INT8 missed {boxes(d['missed'])}"] if d["missed"] else []) + \
        ([f"INT8 added {boxes(d['extra'])}"] if d["extra"] else [])
    return f"{where}: " + "; ".join(parts)


class FloatNetwork:
    """The float ONNX model the INT8 one was compiled from, run by ONNX Runtime on the
    INT8 task's preprocessing (in float; ``recipe`` to give the float model's own, so
    that a wrong recipe in the INT8 folder shows) and decoded by the same task.

    Raises:
        ModelError: the float model cannot be loaded, or does not fit the INT8 model
            (input size, number of classes, an output layout the task cannot read).
    """

    def __init__(self, path: str | os.PathLike[str], task: Classifier | Detector,
                 recipe: PreprocessRecipe | None = None) -> None:
        import onnx
        import onnxruntime as ort

        self.path = Path(path)
        self.task = task
        #: the float model's preprocessing: given, else the INT8 model's
        self.recipe = recipe or task.preprocessor.recipe
        try:
            self.session = ort.InferenceSession(str(self.path),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{self.path}: cannot load the float model: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"{self.path}: the float model must take one NCHW image input, "
                             f"not {[list(i.shape) for i in inputs]}")
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"{self.path}: the float model takes {inputs[0].type} input; "
                             "axrun feeds float32 (pixel - mean) / std, as the INT8 model's "
                             "recipe says")
        shape = inputs[0].shape
        self.input_name = inputs[0].name
        self.batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else 1
        size = task.preprocessor.size_hw
        fixed = tuple(d if isinstance(d, int) else None for d in shape[2:])
        if (shape[1] not in (3, None) and isinstance(shape[1], int)) or \
                any(d is not None and d != s for d, s in zip(fixed, size, strict=True)):
            raise ModelError(f"{self.path}: the float model takes {list(shape)}, the INT8 "
                             f"model {size[0]}x{size[1]} images: not the same network")
        outputs = self.session.get_outputs()
        self.shapes = [[d if isinstance(d, int) else 0 for d in o.shape] for o in outputs]
        if isinstance(task, Classifier):
            counts = [int(np.prod([d for d in s[1:] if d != 1] or [1])) for s in self.shapes]
            if counts[0] != task.classes:
                raise ModelError(f"{self.path}: the float model's first output {self.shapes[0]}"
                                 f" holds {counts[0]} values; the INT8 model has "
                                 f"{task.classes} classes")
            graph = onnx.load(str(self.path), load_external_data=False).graph  # the ops
            last = last_computing_op(graph, outputs[0].name)
            self.score_kind = SCORE_KINDS[1] if last == "Softmax" else SCORE_KINDS[0]
        else:
            self.format, self.box_output = self._detect_layout(task)

    def _detect_layout(self, task: Detector) -> tuple[str, int | None]:
        """The float outputs' format: the INT8 postamble's when they have its shapes
        (the postamble was cut from this network), else read from their shapes."""
        post = task.postamble.output_shapes if task.postamble is not None else None
        if post is not None and [s[1:] for s in post] == [s[1:] for s in self.shapes]:
            return task.format, None
        if len(self.shapes) == 2:
            names = [o.name for o in self.session.get_outputs()]
            return "boxes-scores", Detector.boxes_scores_layout(self.shapes, names)
        if len(self.shapes) != 1:
            raise ModelError(f"{self.path}: the float model has {len(self.shapes)} outputs; "
                             "axrun reads one (or boxes and scores)")
        try:
            fmt = detect_format(self.shapes[0], len(task.labels) or None,
                                axrun_compiled=False)
        except ModelError as exc:
            raise ModelError(f"{self.path}: the float model's output: {exc}") from exc
        return fmt, None

    def predict(self, image: np.ndarray) -> Classification | Detections:
        """The float answer for one BGR ``uint8`` image (H, W, 3).

        Raises:
            ModelError: the outputs do not read as the format says.
        """
        x, geometry = network_input(image, self.recipe, self.task.preprocessor.size_hw)
        if self.batch > 1:
            x = np.repeat(x, self.batch, 0)
        try:
            outputs = self.session.run(None, {self.input_name: x})
        except Exception as exc:  # ONNX Runtime's errors have no common base
            raise ModelError(f"{self.path}: the float model failed: {exc}") from exc
        if isinstance(self.task, Classifier):
            return self.task.classify_scores(outputs[0][0], self.score_kind)
        boxes, scores = self.task.decode(outputs, 0, self.format, self.box_output)
        return self.task.detections(boxes, scores, geometry)


@dataclass
class Fidelity:
    """The comparison of a run: the tally, and the images INT8 disagreed on."""

    tally: Tally
    float_model: str
    images_from: str
    float_recipe: str  # where the float side's preprocessing came from
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """What ``fidelity.json`` and ``axrun check --json`` hold."""
        return {"v": FIDELITY_VERSION, "float_model": self.float_model,
                "images_from": self.images_from, "float_recipe": self.float_recipe,
                **self.tally.to_dict(),
                "disagreements": self.disagreements, "failures": self.failures}

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as ``folder/fidelity.json`` (replacing it whole).

        Raises:
            OutputError: it cannot be written (nothing is left behind).
        """
        path = Path(folder) / FIDELITY_FILE
        tmp = path.with_name(f".{FIDELITY_FILE}.tmp")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            if tmp.is_file():
                tmp.unlink()
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        return path


def compare(results: Iterable[Any], reference: FloatNetwork) -> Iterator[
        Comparison | tuple[str, InputError]]:
    """For each INT8 :class:`~axrun.results.Result` (run with ``keep_images=True`` and
    a classifier returning every class), the :class:`Comparison` with the float
    network on the same pixels; ``(source, error)`` for an input that failed."""
    for result in results:
        if result.error is not None:
            yield result.source, result.error
            continue
        float_ = reference.predict(result.image)
        int8 = result.prediction
        if isinstance(int8, Classification) and isinstance(float_, Classification):
            detail = compare_classification(float_, int8)
            agrees = detail["float"]["id"] == detail["int8"]["id"]
        elif isinstance(int8, Detections) and isinstance(float_, Detections):
            detail = compare_detections(float_, int8)
            agrees = not detail["missed"] and not detail["extra"]
        else:
            raise ModelError("INT8 and float answers are of different kinds")
        yield Comparison(result.source, result.frame, agrees, detail)


ALL_CLASSES = 1 << 30  # top_k for the INT8 classifier: every class (for score differences)


def check_model(
    model: str | os.PathLike[str] | ModelFolder,
    float_model: str | os.PathLike[str],
    items: Iterable[Item],
    *,
    backend: str | None = None,
    images_from: str = "",
    float_recipe: PreprocessRecipe | None = None,
    float_recipe_from: str | None = None,
    on_image: Callable[[Comparison | tuple[str, InputError]], None] | None = None,
    **task_options: Any,
) -> Fidelity:
    """Compare the INT8 model ``model`` (a folder, or a name :func:`axrun.load` takes)
    with ``float_model`` (the float ONNX it was compiled from) on ``items`` (see
    :func:`axrun.sources.items_from`), through ``backend`` (default: the real runtime
    when present, else the emulator). ``float_recipe``: the float model's preprocessing
    (default: the INT8 folder's; then only the quantization is compared, not the
    recipe the folder holds); ``float_recipe_from`` says where it came from (stored
    with the figures). ``task_options`` go to
    :func:`axrun.tasks.make_task` (``conf``, ``iou``... for detect). ``on_image`` is
    called with each image's comparison (or its input error) as it comes; only the
    disagreements and failures are kept.

    Raises:
        ModelError, DeviceError: the models cannot be loaded or do not fit each other.
        UsageError: the folder says no task it can compare (classify or detect).
    """
    folder = model if isinstance(model, ModelFolder) else load_model_folder(model)
    options: dict[str, Any] = dict(task_options)
    if task_name(folder, None) == "classify":
        options["top_k"] = ALL_CLASSES
    task = make_task(folder, None, **options)
    reference = FloatNetwork(float_model, task, float_recipe)
    kind = "classify" if isinstance(task, Classifier) else "detect"
    fidelity = Fidelity(Tally(kind), Path(float_model).name, images_from,
                        float_recipe_from or ("given" if float_recipe else FOLDER_RECIPE))
    with Engine(folder, backend=backend, config=EngineConfig(decode="full")) as engine:
        for outcome in compare(engine.run(task, items, keep_images=True), reference):
            if isinstance(outcome, Comparison):
                fidelity.tally.add(outcome)
                if not outcome.agrees:
                    fidelity.disagreements.append(outcome.to_dict())
            else:
                fidelity.tally.failed += 1
                fidelity.failures.append({"source": outcome[0], "error": str(outcome[1])})
            if on_image is not None:
                on_image(outcome)
    return fidelity


def device_inputs(task: Classifier | Detector, spec: TensorSpec, items: Iterable[Item],
                  limit: int, on_error: Callable[[InputError], None] | None = None) -> \
        list[np.ndarray]:
    """At most ``limit`` readable images of ``items`` written as the device input (a
    whole padded int8 batch, the image in every slot): what :func:`layer_sensitivity`
    runs on. Unreadable ones are skipped, each given to ``on_error``.

    Raises:
        InputError: none of them could be read.
    """
    out: list[np.ndarray] = []
    for item in items:
        if len(out) >= limit:
            break
        try:
            image = item.load()
        except InputError as exc:
            if on_error is not None:
                on_error(exc)
            continue
        buffer = np.full(spec.shape, spec.zero_point, np.int8)
        task.preprocess(image, [buffer[0]])
        buffer[1:] = buffer[0]
        out.append(buffer)
    if not out:
        raise InputError("none of the images could be read", "decode")
    return out


def layer_report(model: str | os.PathLike[str] | ModelFolder, items: Iterable[Item],
                 images: int = 4, on_progress: Callable[[int, int], None] | None = None,
                 on_error: Callable[[InputError], None] | None = None,
                 graph: Any = None) -> LayerReport:
    """Where the INT8 model ``model`` (a folder ``axrun compile`` wrote) loses
    precision, activation by activation (:func:`~axrun.compiler.sensitivity.layer_sensitivity`),
    on the first ``images`` readable images of ``items`` (``on_error`` gets each
    unreadable one); ``graph``: its :func:`qdq_graph`, when already loaded.

    Raises:
        ModelError: not a folder axrun compile wrote (no QDQ device graph).
        InputError: none of the images could be read.
    """
    from axrun.compiler.sensitivity import layer_sensitivity

    folder = model if isinstance(model, ModelFolder) else load_model_folder(model)
    graph = graph if graph is not None else qdq_graph(folder)
    inputs = device_inputs(make_task(folder, None), folder.manifest.inputs[0], items, images,
                           on_error)
    return layer_sensitivity(graph, inputs, on_progress)


def qdq_graph(folder: ModelFolder) -> Any:
    """The QDQ device graph (an ``onnx.ModelProto``) of a folder ``axrun compile`` wrote,
    checked to have 8-bit activations a per-layer report can switch.

    Raises:
        ModelError: no such graph (a folder compiled for Metis by the Voyager SDK, say).
    """
    import onnx

    from axrun.compiler.sensitivity import gated_graph

    graph_file = folder.root / str(read_json(folder.model_json).get("device_graph", ""))
    if not graph_file.is_file():
        raise ModelError(f"{folder.root}: no device graph (the QDQ graph axrun compile "
                         "writes): a per-layer report needs a folder axrun compile wrote")
    try:
        graph = onnx.load(str(graph_file))
    except Exception as exc:
        raise ModelError(f"{graph_file}: cannot read the device graph: {exc}") from exc
    gated_graph(graph)  # raises when it has nothing to switch
    return graph


def read_fidelity(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``folder``'s ``fidelity.json`` (what compile or ``check --save`` measured), None
    when there is none. An unreadable one is reported as such, not raised."""
    path = Path(folder) / FIDELITY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"summary": f"{path} cannot be read ({exc})"}
    return data if isinstance(data, dict) else {"summary": f"{path} is not a JSON object"}
