"""Dataset outputs of detection: what people pre-labelling a dataset reach for.

- :class:`YoloLabels` (``--save-txt DIR``): one YOLO label file per image or video
  frame, ``class cx cy w h [conf]`` normalized to the image;
- :class:`CocoResults` (``-o NAME.coco.json``): the COCO results format, with an
  image index beside it;
- :class:`Crops` (``--save-crop DIR``): each box cut out of the original image, one
  folder per class.

Each is a sink (:class:`axrun.sinks.Sink`): it gets every result in input order, and
failed inputs get no file. Label and crop files are named after their inputs as
annotated copies are (:func:`axrun.outputs.save_name`: sub-folders mirrored) and never
replace a file axrun did not write (:class:`axrun.outputs.OutputFolder`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import cv2
import numpy as np

from axrun.errors import OutputError, UsageError
from axrun.files import atomic_write
from axrun.outputs import ENCODABLE, OutputFolder, coco_index_path, item_key, save_name
from axrun.results import Detections, Result
from axrun.sources import Item


def _stem(item: Item, inputs_root: str) -> Path:
    """An input's name under an output folder, without its suffix: ``sub/img`` for
    ``sub/img.jpg``, ``sub/img.page2`` for a page, ``sub/clip_000042`` for frame 42 of
    ``sub/clip.mp4`` (six digits, so that names sort in frame order)."""
    rel = save_name(item.source, inputs_root)
    if item.page is not None:
        return rel.with_name(f"{rel.stem}.page{item.page}")
    if item.frame is not None:
        return rel.with_name(f"{rel.stem}_{item.frame:06d}")
    return rel.with_name(rel.stem) if rel.suffix else rel


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def yolo_lines(detections: Detections, width: int, height: int,
               conf: bool = False) -> list[str]:
    """YOLO label lines for one image of ``width`` × ``height`` pixels:
    ``class cx cy w h`` (the model's class index; box centre and size as fractions of
    the image width and height, 6 decimals), then the score when ``conf``. The format
    Ultralytics and Darknet train from."""
    lines = []
    for (x1, y1, x2, y2), score, cid in zip(detections.xyxy.tolist(),
                                            detections.confidence.tolist(),
                                            detections.class_id.tolist(), strict=True):
        line = (f"{cid} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
        lines.append(line + (f" {score:.5f}" if conf else ""))
    return lines


class _FolderSink:
    """A sink writing files into an :class:`OutputFolder`; ``kind`` names them in the
    run's summary."""

    kind: ClassVar[str]
    folder: OutputFolder

    def close(self, complete: bool = True) -> None:
        self.folder.close()

    def written(self) -> str | None:
        files = self.folder.files
        return f"{self.folder.root}{os.sep} ({files} {self.kind})" if files else None


class YoloLabels(_FolderSink):
    """``--save-txt DIR``: a ``.txt`` label file per image (see :func:`yolo_lines`),
    empty when nothing was detected (the image was looked at: a negative sample), none
    for a failed input. Video frames get one file each (``clip_000042.txt``)."""

    needs_images: ClassVar[bool] = False
    kind = "label file(s)"

    def __init__(self, root: Path, inputs_root: str | None = None, conf: bool = False,
                 replace_others: bool = False) -> None:
        self.folder = OutputFolder(root, "labels folder", replace_others)
        self.inputs_root = inputs_root or os.getcwd()
        self.conf = conf

    def write(self, result: Result) -> None:
        det, item = result.prediction, result.item
        key = item_key(item.source, item.frame)
        if result.error is None and isinstance(det, Detections):
            if result.geometry is None:
                raise OutputError(f"{item.source}: no image size to normalize its labels by")
            width, height = result.geometry.width, result.geometry.height
            stem = _stem(item, self.inputs_root)
            path = self.folder.claim(stem.with_name(stem.name + ".txt"), key, item.source)
            text = "".join(line + "\n" for line in yolo_lines(det, width, height, self.conf))
            _write(path, text.encode())
        self.folder.settle(key)  # an earlier run's file of an input that fails now goes


_UNSAFE = re.compile(r"[\x00-\x1f/\\:*?\"<>|]")


def class_folder(label: str, class_id: int) -> str:
    """A class's folder name: its label, or, when the label is not a safe folder name
    as it is (a ``/`` in it, empty, ``..``), the label with those characters made
    ``_`` and the class id added (``per_son_0`` for ``per/son``), so that two classes
    never share a folder."""
    name = _UNSAFE.sub("_", label).strip(" .")
    return label if name and name == label else f"{name or 'class'}_{class_id}"


class Crops(_FolderSink):
    """``--save-crop DIR``: every detected box cut out of the original image (pixels
    the box touches: its edges rounded outwards, at least one pixel) and saved as
    ``DIR/<class>/<input name>_<k>.<ext>``, ``k`` the box's place in the record's
    ``detections`` (so a crop leads back to its record); video frames as
    ``<name>_<frame>_<k>.jpg``. Encoded as the input was where OpenCV writes that format
    (:data:`~axrun.outputs.ENCODABLE`), else (GIF, HEIC..., pages of a multi-page file,
    video frames) as JPEG. Class folders: :func:`class_folder`."""

    needs_images: ClassVar[bool] = True
    kind = "crop(s)"

    def __init__(self, root: Path, inputs_root: str | None = None,
                 replace_others: bool = False) -> None:
        self.folder = OutputFolder(root, "crops folder", replace_others)
        self.inputs_root = inputs_root or os.getcwd()
        self.crops = 0

    def write(self, result: Result) -> None:
        item = result.item
        key = item_key(item.source, item.frame)
        self._write(result, key)
        self.folder.settle(key)  # crops of boxes an earlier run found and this one did not

    def _write(self, result: Result, key: str) -> None:
        det, item = result.prediction, result.item
        image = result.image if result.image is not None else item.image
        if result.error is not None or image is None or not isinstance(det, Detections):
            return
        stem = _stem(item, self.inputs_root)
        suffix = Path(item.source).suffix.lower() if item.frame is None else ".jpg"
        if suffix not in ENCODABLE:
            suffix = ".jpg"
        h, w = image.shape[:2]
        for k, ((x1, y1, x2, y2), cid) in enumerate(zip(det.xyxy.tolist(),
                                                         det.class_id.tolist(), strict=True)):
            label = det.label[k] if det.label else str(cid)
            left, top = min(max(math.floor(x1), 0), w - 1), min(max(math.floor(y1), 0), h - 1)
            right = min(max(math.ceil(x2), left + 1), w)
            bottom = min(max(math.ceil(y2), top + 1), h)
            rel = Path(class_folder(label, cid)) / stem.with_name(f"{stem.name}_{k}{suffix}")
            path = self.folder.claim(rel, key, item.source)
            ok, data = cv2.imencode(suffix, np.ascontiguousarray(image[top:bottom, left:right]))
            if not ok:
                raise UsageError(f"{path}: cannot encode {suffix} images")
            _write(path, data.tobytes())


class CocoResults:
    """``-o NAME.coco.json``: detections in the COCO results format, the one
    ``pycocotools`` ``COCO.loadRes`` and most evaluation tools read: one JSON array of
    ``{"image_id", "category_id", "bbox": [x, y, width, height], "score"}``, ``bbox`` in
    original-image pixels from the top-left corner (2 decimals), ``category_id`` the
    model's class index (0-based, as in its labels file).

    Image ids are 1, 2, 3... in input order (every image and video frame that got a
    record, failed ones included, so ids follow the records). The image index goes beside
    it, ``NAME.images.json``: ``{"images": [{"id", "file_name", "width", "height"}],
    "categories": [{"id", "name"}]}`` (video frames also have ``frame`` and ``time_s``;
    failed inputs are left out), which with the results makes a COCO dataset.

    Both files are written as results arrive and closed valid however the run ends
    (errors, Ctrl-C, SIGTERM); only a process killed outright (SIGKILL, a power cut)
    leaves them without their closing brackets.
    """

    needs_images: ClassVar[bool] = False

    def __init__(self, stream: IO[str], index: IO[str], path: str,
                 labels: Sequence[str] = ()) -> None:
        self.stream, self.index, self.path = stream, index, path
        self.image_id = 0
        self.boxes = 0
        # every class the model has; a class id past the labels is named as it is
        self.categories: dict[int, str] = dict(enumerate(labels))
        stream.write("[")
        index.write('{"images": [')
        self._images = 0

    def write(self, result: Result) -> None:
        self.image_id += 1
        det, item = result.prediction, result.item
        if result.error is not None or not isinstance(det, Detections):
            return
        size = result.geometry
        entry: dict[str, Any] = {"id": self.image_id, "file_name": item.source,
                                 "width": size.width if size else None,
                                 "height": size.height if size else None}
        if item.frame is not None:
            entry.update(frame=item.frame, time_s=item.time_s)
        self.index.write(("," if self._images else "") + "\n  "
                         + json.dumps(entry, ensure_ascii=False))
        self._images += 1
        for k, ((x1, y1, x2, y2), score, cid) in enumerate(zip(
                det.xyxy.tolist(), det.confidence.tolist(), det.class_id.tolist(),
                strict=True)):
            self.categories.setdefault(cid, det.label[k] if det.label else str(cid))
            box = [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]
            record = {"image_id": self.image_id, "category_id": cid, "bbox": box,
                      "score": round(score, 5)}
            self.stream.write(("," if self.boxes else "") + "\n  " + json.dumps(record))
            self.boxes += 1
        self.stream.flush()
        self.index.flush()

    def close(self, complete: bool = True) -> None:
        self.stream.write("\n]\n" if self.boxes else "]\n")
        categories = [{"id": k, "name": v} for k, v in sorted(self.categories.items())]
        self.index.write("\n],\n \"categories\": "
                         + json.dumps(categories, ensure_ascii=False) + "}\n")
        self.stream.close()
        self.index.close()

    def written(self) -> str:
        return (f"{self.path} ({self.boxes} box(es) in {self._images} image(s)), "
                f"{coco_index_path(self.path)} (image index)")
