"""Classification: top-k class ids, labels and scores from the device output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from axrun.errors import ModelError, UsageError
from axrun.modelfolder import ModelFolder
from axrun.preprocess import Geometry, Preprocessor, PreprocessRecipe
from axrun.tensors import dequantize, interior

SCORE_KINDS = ("logits", "probabilities")


@dataclass(frozen=True)
class Classification:
    """Top-k of one image, best first. ``scores`` are softmax probabilities when the
    network outputs logits, else the network's own scores."""

    class_ids: np.ndarray  # (k,) int
    scores: np.ndarray  # (k,) float32
    labels: tuple[str, ...]


def recipe_for(folder: ModelFolder, override: PreprocessRecipe | None) -> PreprocessRecipe:
    """The preprocessing recipe: the override, else the folder's ``axrun.json``."""
    if override is not None:
        return override
    if folder.sidecar and folder.sidecar.preprocess:
        return folder.sidecar.preprocess
    raise UsageError(
        f"{folder.root} has no preprocessing recipe (no axrun.json); give one with "
        "--resize/--crop/--mean/--std/--color"
    )


def label_names(folder: ModelFolder, override: tuple[str, ...] | None, classes: int) -> \
        tuple[str, ...]:
    """Labels from the override or the folder; ``class_<id>`` where none are known."""
    labels = override or folder.labels
    if labels is None:
        return tuple(f"class_{i}" for i in range(classes))
    if len(labels) < classes:
        raise ModelError(f"labels list has {len(labels)} names; the model has {classes} classes")
    return labels


def check_task(folder: ModelFolder, task: str) -> None:
    """Refuse a model whose ``axrun.json`` says it is for another task."""
    if folder.task is not None and folder.task != task:
        raise UsageError(f"{folder.root} is a {folder.task} model (axrun.json); use "
                         f"axrun {folder.task}, or -m a {task} model")


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax of a 1-D float array."""
    e = np.exp(x - x.max())
    return e / e.sum()


class Classifier:
    """The classification task for the engine.

    Only the first device output is read. With ``scores="probabilities"`` only the k
    winning values are dequantized; logits need all of them for the softmax.
    """

    def __init__(
        self,
        folder: ModelFolder,
        *,
        recipe: PreprocessRecipe | None = None,
        top_k: int = 5,
        labels: tuple[str, ...] | None = None,
        scores: str | None = None,
    ) -> None:
        check_task(folder, "classify")
        if top_k < 1:
            raise UsageError("--top-k must be at least 1")
        self.spec = folder.manifest.outputs[0]
        self.classes = int(np.prod(self.spec.unpadded_shape[1:]))
        self.top_k = min(top_k, self.classes)
        self.labels = label_names(folder, labels, self.classes)
        self.preprocessor = Preprocessor(recipe_for(folder, recipe), folder.manifest.inputs[0])
        decoder = folder.sidecar.decoder if folder.sidecar else {}
        self.score_kind = scores or decoder.get("scores", "logits")
        if self.score_kind not in SCORE_KINDS:
            raise UsageError(f"scores must be logits or probabilities, not {self.score_kind!r}")
        # exp of every possible dequantized logit, shifted so the largest is 1: the
        # softmax then needs one table lookup per class and no float conversion.
        # Indexed by the int8 value's raw byte (0..127 → 0..127, -128..-1 → 128..255).
        q = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.float64)
        self._exp = np.exp((q - 127) * self.spec.scale)
        self._interior = interior(self.spec.shape[1:], self.spec.padding[1:])

    def preprocess(self, image: np.ndarray, slots: list[np.ndarray]) -> Geometry:
        return self.preprocessor(image, slots[0])

    def classify(self, q: np.ndarray) -> Classification:
        """Top-k from one image's depadded int8 output (any shape).

        The ranking is decided on the int8 values (dequantization is monotonic); ties
        go to the lower class id. Few numpy calls on purpose: each one may re-take the
        GIL, which is contended while the pipeline runs.
        """
        flat = q.reshape(-1)
        # ~x reverses the order of int8 values: a stable ascending sort of ~x is the
        # descending order with ties by class id (and a fast 8-bit radix sort).
        order = np.argsort(np.invert(flat), kind="stable")[: self.top_k]
        if self.score_kind == "logits":
            raw = flat.view(np.uint8)
            exp = self._exp
            scores = exp.take(raw.take(order)) / exp.take(raw).sum()
        else:
            scores = dequantize(flat[order], self.spec.scale, self.spec.zero_point)
        labels = self.labels
        return Classification(order, scores.astype(np.float32),
                              tuple([labels[i] for i in order.tolist()]))

    def postprocess(self, outputs: list[np.ndarray], metas: list[Any | None]) -> list[Any]:
        out, interior_ = outputs[0], self._interior
        return [None if m is None else self.classify(out[slot][interior_])
                for slot, m in enumerate(metas)]
