"""Classification: top-k class ids, labels and scores from the device output."""

from __future__ import annotations

import numpy as np

from axrun.errors import ModelError
from axrun.modelfolder import ModelFolder
from axrun.params import choice, integer
from axrun.preprocess import Geometry, PreprocessRecipe
from axrun.results import Classification, Prediction
from axrun.tasks.base import check_task, label_names, preprocess_recipe
from axrun.tasks.postamble import Postamble
from axrun.tasks.preamble import input_writer
from axrun.tensors import dequantize, interior

SCORE_KINDS = ("logits", "probabilities")
TOP_K = 5  # classes per image by default


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax of a 1-D float array."""
    e = np.exp(x - x.max())
    out: np.ndarray = e / e.sum()
    return out


class Classifier:
    """The classification task for the engine.

    ``recipe``: the preprocessing (default: the folder's ``axrun.json``, else
    :func:`~axrun.tasks.base.preprocess_recipe`'s default); ``top_k``: classes per image;
    ``labels``: class names overriding the folder's; ``scores``: what the network
    outputs, ``logits`` (softmax applied) or ``probabilities`` (default: ``axrun.json``,
    else probabilities when the postamble's output comes from a ``Softmax``, else
    logits).

    Only the first device output is read, or, when the folder has a postamble, the
    postamble's first output (float scores). With ``scores="probabilities"`` only the
    k winning int8 values are dequantized; logits need all of them for the softmax.

    Raises:
        ParameterError: a parameter cannot be used.
        UsageError: ``folder`` holds a detection model.
    """

    def __init__(
        self,
        folder: ModelFolder,
        *,
        recipe: PreprocessRecipe | None = None,
        top_k: int = TOP_K,
        labels: tuple[str, ...] | None = None,
        scores: str | None = None,
    ) -> None:
        check_task(folder, "classify")
        integer("top_k", top_k, 1)
        self.spec = folder.manifest.outputs[0]
        # With a postamble, its first output holds the class scores (in float).
        self.postamble = Postamble(folder) if folder.postamble_path else None
        if self.postamble is not None:
            what = "the postamble's first output"
            shape = tuple(self.postamble.output_shapes[0][1:])
        else:
            what = f"output {self.spec.name!r}"
            shape = self.spec.unpadded_shape[1:]
        # one vector: [C], [1, 1, C] (NHWC) or [C, 1, 1] (a postamble's NCHW)
        longer = [d for d in shape if d != 1]
        if len(longer) > 1 or not shape or min(shape) < 1:
            raise ModelError(
                f"{folder.root}: {what} is {list(shape)}, not one vector of class scores: "
                "not a classification model (a detector? give task='detect')")
        self.classes = int(np.prod(shape))
        self.top_k = min(top_k, self.classes)
        self.labels = label_names(folder, labels, self.classes)
        self.preprocessor = input_writer(folder, recipe or preprocess_recipe(folder, "classify"))
        decoder = folder.sidecar.decoder if folder.sidecar else {}
        # A postamble ending in Softmax gives probabilities: a second softmax would
        # squash them towards uniform.
        ends_in_softmax = self.postamble is not None and self.postamble.output_ops[0] == "Softmax"
        self.score_kind = choice(
            "scores", scores or decoder.get("scores") or
            ("probabilities" if ends_in_softmax else "logits"), SCORE_KINDS)
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
        return self._top_k(order, scores)

    def classify_scores(self, values: np.ndarray, score_kind: str | None = None) -> \
            Classification:
        """Top-k from one image's float scores (a postamble's output, or a float
        network's), ties to the lower class id; softmax applied for logits.
        ``score_kind``: what ``values`` are (default: this model's :attr:`score_kind`)."""
        flat = values.reshape(-1)
        order = np.argsort(-flat, kind="stable")[: self.top_k]
        scores = softmax(flat.astype(np.float64))[order] \
            if (score_kind or self.score_kind) == "logits" else flat[order]
        return self._top_k(order, scores)

    def _top_k(self, order: np.ndarray, scores: np.ndarray) -> Classification:
        labels = self.labels
        return Classification(order, scores.astype(np.float32),  # argsort: intp (int64)
                              tuple([labels[i] for i in order.tolist()]))

    def postprocess(self, outputs: list[np.ndarray],
                    geometries: list[Geometry | None]) -> list[Prediction | None]:
        if self.postamble is not None:
            post = self.postamble(outputs)[0]
            return [None if g is None else self.classify_scores(post[slot])
                    for slot, g in enumerate(geometries)]
        out, interior_ = outputs[0], self._interior
        return [None if g is None else self.classify(out[slot][interior_])
                for slot, g in enumerate(geometries)]
