"""The front door: load a model, call it on inputs, get results.

    import axrun

    with axrun.load("yolox-nano-coco") as model:   # a bundled model, by name
        for r in model(["a.jpg", "clips/", frame_bgr, jpeg_bytes]):
            print(r.source, r.frame, r.detections.xyxy, r.to_dict())
        results = model.predict(paths)              # a list, in input order
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

from axrun.engine import Engine, EngineConfig, StageTimes
from axrun.errors import ParameterError
from axrun.modelfolder import ModelFolder, bundled_model, load_model_folder
from axrun.params import flag
from axrun.preprocess import PreprocessRecipe
from axrun.results import Result
from axrun.runtime import Backend
from axrun.sources import Input, ItemStream, SourceOptions, items_from
from axrun.tasks import check_task_name, make_task, task_name
from axrun.tasks.classify import Classifier
from axrun.tasks.detect import Detector


def load(model: str | os.PathLike[str] | ModelFolder | None = None, *,
         task: str | None = None, backend: str | Backend | None = None,
         config: EngineConfig | None = None, recipe: PreprocessRecipe | None = None,
         labels: tuple[str, ...] | None = None, **options: object) -> Model:
    """Open a model on the device, ready to be called on inputs.

    ``model``: a model folder, its ``model.json``, a parent of one, or a model's name
    (``"yolox-nano-coco"``; a path that exists wins, then ``AXRUN_MODELS``, then the
    bundled models: see :func:`axrun.modelfolder.find_model_json`); None for the
    bundled model of ``task`` (EfficientNet-Lite0 for ``classify``, the default;
    YOLOX-Nano for ``detect``). ``task``: ``classify`` or ``detect``; needed when the
    folder's ``axrun.json`` does not say it. ``backend``: ``auto`` (default: the real
    ``axelera.runtime`` if installed, else the emulator), ``metis`` or ``emulator``.
    ``config``: cores, devices, double buffering, host threads (:class:`EngineConfig`).
    ``recipe``, ``labels`` and ``options`` (``top_k``, ``scores``; ``conf``, ``iou``,
    ``max_det``, ``agnostic``, ``classes``) as for :func:`axrun.tasks.make_task`.

    The device is held until :meth:`Model.close`, the end of a ``with`` block, the
    model being garbage-collected, or the interpreter's exit.

    Raises:
        ModelError: the folder is missing or malformed. ParameterError: an option.
        DeviceBusy, DeviceError: the device cannot be opened.
    """
    if task is not None:
        check_task_name(task)
    if config is not None and not isinstance(config, EngineConfig):
        raise ParameterError("config", f"must be an EngineConfig, not {config!r}")
    if model is None:
        model = bundled_model(task or "classify")
    folder = model if isinstance(model, ModelFolder) else load_model_folder(model)
    name = task_name(folder, task)
    built = make_task(folder, name, recipe=recipe, labels=labels, **options)
    return Model(Engine(folder, backend=backend, config=config), built, name).open()


class Model:
    """A model open on the device with its task: call it on inputs (see :func:`load`).

    One call runs at a time; a call's results come while the next inputs are read,
    decoded and run (the pipeline of :mod:`axrun.engine`).
    """

    def __init__(self, engine: Engine, task: Classifier | Detector, task_name: str) -> None:
        self.engine = engine
        self.task = task
        self.task_name = task_name
        self.stats = StageTimes()  # summed over every call
        self._busy = threading.Lock()
        self._closed = False

    @property
    def folder(self) -> ModelFolder:
        return self.engine.folder

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names, by class id."""
        return tuple(self.task.labels)

    def open(self) -> Model:
        """Reserve the device and load the model (done by :func:`load`)."""
        self.engine.open()
        self._closed = False
        return self

    def close(self) -> None:
        """Release the device (idempotent); calling the model afterwards is an error."""
        self._closed = True
        self.engine.close()

    def __enter__(self) -> Model:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, inputs: Input, *, keep_images: bool = False, vid_stride: int = 1,
                 limit: int | None = None, may_wait: bool | None = None,
                 color: str = "bgr") -> Iterator[Result]:
        """One :class:`~axrun.results.Result` per image or video frame, in input order.

        ``inputs``: paths, folders (recursive), globs, videos, URLs, cameras,
        ``uint8`` BGR image arrays (H, W, 3) or grey (H, W), encoded image bytes, or
        iterables of any of these (see :func:`axrun.sources.items_from`, which also
        says when ``may_wait`` applies). An input that cannot be read gets a result
        with its ``error``; the others go on. ``keep_images``: each result carries its
        decoded frame (``Result.image``). ``vid_stride``: every n-th video frame;
        ``limit``: at most this many results. ``color``: the channel order of
        3-channel arrays, ``bgr`` (OpenCV's) or ``rgb`` (PIL's, imageio's); arrays are
        copied, so their buffers may be reused at once. Closing the model ends a call
        still going on (its next step raises :class:`~axrun.errors.PipelineError`).

        Raises:
            RuntimeError: another call on this model is still running, or the model
                was closed.
            DeviceError, PipelineError: the device or the engine failed (the results
                before it were given).
        """
        if self._closed:
            raise RuntimeError("this model was closed: axrun.load() it again")
        flag("keep_images", keep_images)
        items = items_from(inputs, SourceOptions(vid_stride=vid_stride, limit=limit),
                           may_wait, color)
        return self._results(items, keep_images)

    def _results(self, items: ItemStream, keep_images: bool) -> Iterator[Result]:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("this model is already running a call: finish (or close) "
                               "that iterator first")
        try:
            pipeline = self.engine.pipeline(self.task, self.stats, keep_images)
            yield from pipeline.run(items)
        finally:
            self._busy.release()

    def predict(self, inputs: Input, *, keep_images: bool = False, vid_stride: int = 1,
                limit: int | None = None, may_wait: bool | None = None,
                color: str = "bgr") -> list[Result]:
        """The results of :meth:`__call__` as a list, in input order (all of them are
        held in memory: for long inputs, iterate the call instead)."""
        return list(self(inputs, keep_images=keep_images, vid_stride=vid_stride, limit=limit,
                         may_wait=may_wait, color=color))
