"""Results: what axrun computes for one input, in one vocabulary for every task.

- :class:`Classification`: the top-k classes of an image.
- :class:`Detections`: the boxes found in an image.
- :class:`Result`: one input (an image, or one frame of a video) and its outcome:
  a prediction, or the error that kept it from having one. :meth:`Result.to_dict`
  is the record the command line writes.

Every prediction has ``class_id`` (int64), ``confidence`` (float32) and ``label``
(class names), one entry per class or box, best first. Records (layout version
:data:`RECORD_VERSION`, documented in docs/reference.md) name these ``id``, ``score`` and
``label``:

    {"v": 1, "source": "a.jpg", "frame": null, "time_s": null, "width": 640, "height": 480,
     "top": [{"id": 967, "label": "espresso", "score": 0.91}, ...]}              # classify
    {..., "detections": [{"id": 0, "label": "person", "score": 0.88,
                          "box": [x1, y1, x2, y2]}]}                             # detect
    {"v": 1, "source": "b.jpg", "frame": null, "time_s": null,
     "error": {"type": "decode", "message": "..."}}                              # failure
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from axrun.errors import InputError

if TYPE_CHECKING:
    from axrun.preprocess import Geometry
    from axrun.sources import Item

RECORD_VERSION = 1


def _check_rows(n: int, **arrays: np.ndarray) -> None:
    bad = [f"{name} {a.shape}" for name, a in arrays.items() if a.shape[:1] != (n,)]
    if bad:
        raise ValueError(f"expected {n} rows each, got " + ", ".join(bad))


@dataclass(frozen=True)
class Classification:
    """The top-k classes of one image, best first.

    ``class_id`` (k,) int64; ``confidence`` (k,) float32: softmax probabilities when the
    network outputs logits, else the network's own scores; ``label`` k class names.
    """

    class_id: np.ndarray
    confidence: np.ndarray
    label: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.class_id)


@dataclass(frozen=True)
class Detections:
    """The boxes of one image, one row per detection, best first.

    ``xyxy`` (N, 4) float32: x1, y1, x2, y2 in original-image pixels, clipped to the
    image; ``confidence`` (N,) float32; ``class_id`` (N,) int64; ``label`` N class names.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    label: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must be (N, 4), got {self.xyxy.shape}")
        _check_rows(n, confidence=self.confidence, class_id=self.class_id)
        if self.label and len(self.label) != n:
            raise ValueError(f"{len(self.label)} labels for {n} boxes")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def to_supervision(self) -> Any:
        """These boxes as a ``supervision.Detections`` (class names in
        ``data["class_name"]``, as supervision's own converters put them).

        Raises:
            ImportError: supervision is not installed (``pip install supervision``).
        """
        try:
            import supervision  # optional: not a dependency of axrun
        except ImportError as exc:
            raise ImportError("to_supervision() needs supervision: pip install supervision") \
                from exc
        return supervision.Detections(
            xyxy=self.xyxy.astype(np.float32), confidence=self.confidence.astype(np.float32),
            class_id=self.class_id.astype(int),
            data={"class_name": np.array(self.label, dtype=str)})


class Tensors(tuple[np.ndarray, ...]):
    """A network's outputs for one frame, without interpretation: one int8 NHWC array
    per device output, padding removed (what :class:`axrun.tasks.raw.RawTask` gives)."""

    __slots__ = ()


Prediction = Classification | Detections | Tensors
P = TypeVar("P", Classification, Detections)


@dataclass(frozen=True, slots=True)
class Result:
    """One input's outcome: a ``prediction`` (a :class:`Classification`,
    :class:`Detections` or raw :class:`Tensors`), or the ``error`` that kept it from
    having one.

    ``geometry`` maps network pixels back to the original image (its ``width`` and
    ``height`` are the decoded image's, in pixels); ``image`` is the decoded BGR
    ``uint8`` frame (H, W, 3) when it was asked for (``keep_images``), else None.
    """

    item: Item
    prediction: Prediction | None = None
    error: InputError | None = None
    geometry: Geometry | None = None
    image: np.ndarray | None = None

    @property
    def source(self) -> str:
        """The input as given or found: a path, a URL, ``<array 3>``, ``<bytes 0>``..."""
        return self.item.source

    @property
    def frame(self) -> int | None:
        """The frame's index in its video (0 first), None for an image."""
        return self.item.frame

    @property
    def time_s(self) -> float | None:
        """The frame's presentation time in its video, seconds; None for an image."""
        return self.item.time_s

    @property
    def ok(self) -> bool:
        """True when the input has a prediction (no error)."""
        return self.error is None

    @property
    def detections(self) -> Detections | None:
        """The boxes (a detection model), else None.

        Raises:
            InputError: this input failed (the error says why).
        """
        return self._prediction(Detections)

    @property
    def classification(self) -> Classification | None:
        """The top-k classes (a classification model), else None.

        Raises:
            InputError: this input failed (the error says why).
        """
        return self._prediction(Classification)

    def _prediction(self, kind: type[P]) -> P | None:
        if self.error is not None:
            raise self.error
        return self.prediction if isinstance(self.prediction, kind) else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record the command line writes for this input (see the
        module docstring and the record layout in docs/reference.md)."""
        item = self.item
        record: dict[str, Any] = {"v": RECORD_VERSION, **source_fields(item.source),
                                  "frame": item.frame, "time_s": item.time_s,
                                  "file_size": item.size, "file_mtime": item.mtime}
        if self.error is not None:
            record["error"] = {"type": self.error.kind, "message": _text(str(self.error))}
            return record
        if self.geometry is not None:
            record["width"], record["height"] = self.geometry.width, self.geometry.height
        value = self.prediction
        if isinstance(value, Classification):
            record["top"] = [
                {"id": int(i), "label": label, "score": round(float(s), 5)}
                for i, label, s in zip(value.class_id, value.label, value.confidence,
                                       strict=True)
            ]
        elif isinstance(value, Detections):
            record["detections"] = [
                {"id": int(c), "label": label, "score": round(float(s), 5),
                 "box": [round(float(v), 2) for v in box]}
                for box, s, c, label in zip(value.xyxy, value.confidence, value.class_id,
                                            value.label, strict=True)
            ]
        return record


def source_fields(source: str) -> dict[str, str]:
    """``source`` for a record. A file name that is not UTF-8 (bytes decoded with
    ``surrogateescape``, as Python's ``os`` does) gets the name with U+FFFD for each
    undecodable byte, for reading, and ``source_b64``: the exact bytes, base64."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(source)
        return {"source": raw.decode("utf-8", "replace"),
                "source_b64": base64.b64encode(raw).decode("ascii")}
    return {"source": source}


def record_source(record: dict[str, Any]) -> str:
    """The input a record is about, exactly (the inverse of :func:`source_fields`).

    Raises:
        KeyError, ValueError: not a record axrun wrote.
    """
    if "source_b64" in record:
        return os.fsdecode(base64.b64decode(record["source_b64"], validate=True))
    source = record["source"]
    if not isinstance(source, str):
        raise ValueError("source is not a string")
    return source


def _text(text: str) -> str:
    """``text`` as valid UTF-8 (a file name in a message may hold undecodable bytes)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
