"""Scale out with Ray Data: one model per actor, one Metis device per actor, the same
records as one process. Needs the ``ray`` extra (``pip install 'axrun[ray]'``); nothing
here is imported by the rest of axrun.

    import ray
    import axrun.ray

    ds = ray.data.read_binary_files("photos/", include_paths=True)     # or paths
    out = ds.map_batches(axrun.ray.Predictor, batch_size=64, concurrency=2,
                         resources={"metis": 1},                       # one card each
                         fn_constructor_kwargs={"model": axrun.ray.pack("yolox-nano-coco")})
    for row in out.iter_rows():                                        # SCHEMA's columns
        print(row["source"], row["record"])

**Batches in**: a ``bytes`` column (encoded images, as ``read_binary_files`` gives) with
``path`` naming them, or a ``path`` column alone (files the actor reads: they must be
on every node); optional ``source`` (the name the record shows, default ``path``),
``page`` (one page of a multi-page file; without it, its first), ``size`` and
``mtime`` (what ``--resume`` identifies a file by; numbers, or their
decimal text: a column of numbers that has None in it comes as float32, which would
round a time), and ``error_type`` /
``error_message`` (an input the driver already knows failed, passed through so that
its record keeps its place). A video path gives one row per frame.

**Rows out**: :data:`SCHEMA`, the same columns for results and errors; ``record`` is the
record :meth:`axrun.results.Result.to_dict` makes, as JSON, byte for byte what a
single process writes.

**Devices**: each actor opens the model on the first device of its node that has the
cores free (devices are tried in order; a busy one is skipped). Give each node a
custom resource ``metis`` equal to its number of cards (``ray start --resources
'{"metis": 2}'``) and each actor ``resources={"metis": 1}``: Ray then places no more
actors on a node than it has cards. An actor keeps one pipeline open across batches
(no start-up per batch), uses the CPUs Ray gave it for host work, and releases the
device when Ray ends it (the process exits) or on :meth:`Predictor.close`.

**CPUs**: with a read stage (``read_binary_files``), leave CPUs for its tasks: actors
that take every CPU of a node (``num_cpus=1`` each on a 2-CPU node with 2 actors) leave
none for the reads, and the job waits forever (``num_cpus=0.5`` there).

**Models** travel with the job: :func:`pack` reads a model folder into bytes that Ray
ships to the actors (no shared path needed), unpacked once per actor.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from axrun.engine import Engine, EngineConfig
from axrun.errors import DeviceBusy, InputError
from axrun.files import MAX_READ_BYTES, is_regular_file, read_bytes
from axrun.modelfolder import ModelFolder, load_model_folder
from axrun.results import Result
from axrun.runtime import load_backend
from axrun.sinks import dumps_record
from axrun.sources import Item, SourceOptions, expand, is_video
from axrun.tasks import make_task
from axrun.tasks.base import Task

# The columns every output batch has, results and errors alike.
SCHEMA = ("row", "source", "frame", "time_s", "ok", "error_type", "error_message", "record")
MAX_PACKED_BYTES = 1 << 30  # a model folder larger than this is not shipped
DEVICE_WAIT_S = 60.0  # how long an actor waits for a device to be free


@dataclasses.dataclass(frozen=True)
class ModelPackage:
    """A model folder's files (relative path → bytes), picklable: what actors get."""

    name: str
    files: dict[str, bytes]

    def unpack(self, into: Path) -> Path:
        """Write the folder under ``into``; its path."""
        root = into / self.name
        for rel, data in self.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return root


def pack(model: str | os.PathLike[str] | ModelFolder) -> ModelPackage:
    """A model folder (a path, or a model's name) as a :class:`ModelPackage`.

    Raises:
        ModelError: not a model folder. ValueError: over :data:`MAX_PACKED_BYTES`.
    """
    folder = model if isinstance(model, ModelFolder) else load_model_folder(model)
    files, total = {}, 0
    for path in sorted(p for p in folder.root.rglob("*") if p.is_file()):
        total += path.stat().st_size
        if total > MAX_PACKED_BYTES:
            raise ValueError(f"{folder.root}: more than {MAX_PACKED_BYTES} bytes to ship")
        files[path.relative_to(folder.root).as_posix()] = path.read_bytes()
    return ModelPackage(folder.root.name, files)


class _Mark:
    """The end of one batch in the feed: how many items it had, once all were read."""

    def __init__(self) -> None:
        self.items = 0
        self.read = threading.Event()


class _Feed:
    """The pipeline's input, open across batches: items come as :meth:`put` gives them
    (an input that may wait, so the engine never reads ahead of what is there)."""

    may_wait = True

    def __init__(self) -> None:
        self._batches: queue.SimpleQueue[tuple[Iterable[Item], _Mark] | None] = \
            queue.SimpleQueue()

    def put(self, items: Iterable[Item]) -> _Mark:
        mark = _Mark()
        self._batches.put((items, mark))
        return mark

    def close(self) -> None:
        self._batches.put(None)

    def __iter__(self) -> Iterator[Item]:
        while (entry := self._batches.get()) is not None:
            items, mark = entry
            # one item of look-ahead: the batch's end is known before its last item goes,
            # so its results can be collected without waiting for the next batch
            it = iter(items)
            nxt = next(it, None)
            if nxt is None:
                mark.read.set()
            while nxt is not None:
                cur, nxt = nxt, next(it, None)
                mark.items += 1
                if nxt is None:
                    mark.read.set()
                yield cur


def _cpu_share() -> int | None:
    """The CPUs Ray gave this actor (None outside Ray)."""
    try:
        ray: Any = importlib.import_module("ray")  # untyped; only inside a Ray worker
        if not ray.is_initialized():
            return None
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:
        return None
    return max(1, round(cpus)) if cpus else None


class Predictor:
    """A callable class for ``Dataset.map_batches`` (see the module docstring).

    ``model``: a :class:`ModelPackage` (from :func:`pack`; or ``ray.put`` of one), or a
    model folder path or name that exists on every node. ``task``: ``classify`` or
    ``detect`` (default: what the folder says). ``options``: the task's (``top_k``;
    ``conf``, ``iou``, ``max_det``, ``classes``...), as :func:`axrun.tasks.make_task`
    takes them.
    ``config``: cores, double buffering... (its ``devices`` are tried in order; default
    every device of the node); ``decode_threads`` default: the CPUs Ray gave the actor.
    ``vid_stride``, ``background``: as the command line's.

    Raises:
        DeviceBusy: no device of the node has the cores free. ModelError, DeviceError.
    """

    def __init__(self, model: ModelPackage | str | Any, task: str | None = None,
                 options: dict[str, Any] | None = None, config: EngineConfig | None = None,
                 backend: str | None = None, vid_stride: int = 1,
                 background: tuple[int, int, int] = (255, 255, 255)) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if type(model).__name__ == "ObjectRef":  # put in the object store by the driver
            model = importlib.import_module("ray").get(model)
        if isinstance(model, ModelPackage):
            self._tmp = tempfile.TemporaryDirectory(prefix="axrun-model-")
            path: str | Path = model.unpack(Path(self._tmp.name))
        else:
            path = model
        folder = load_model_folder(path)
        self.task: Task = make_task(folder, task or folder.task or "classify",
                                    **(options or {}))
        self.sources = SourceOptions(vid_stride=vid_stride, background=background)
        config = config or EngineConfig()
        if config.decode_threads is None:
            config = dataclasses.replace(config, decode_threads=_cpu_share())
        self.engine = self._open(folder, config, backend)
        self._feed = _Feed()
        self._out: queue.SimpleQueue[Result | BaseException] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._consume, name="axrun-ray-results",
                                        daemon=True)
        self._thread.start()

    @staticmethod
    def _open(folder: ModelFolder, config: EngineConfig, backend: str | None) -> Engine:
        """The engine on the first device whose cores are free; while none is, tried
        again for :data:`DEVICE_WAIT_S` (the actors of a job that just ended are still
        exiting: their devices are free once their processes are gone)."""
        chosen = load_backend(backend or "auto")
        devices: Sequence[int | str] = config.devices or \
            [status.name for status in chosen.list_devices()]
        deadline = time.monotonic() + DEVICE_WAIT_S
        while True:
            busy: DeviceBusy | None = None
            for device in devices:
                engine = Engine(folder, backend=chosen,
                                config=dataclasses.replace(config, devices=(device,)))
                try:
                    return engine.open()
                except DeviceBusy as exc:
                    busy = exc
            if busy is None:
                raise DeviceBusy("no device found")
            if time.monotonic() > deadline:
                raise busy
            time.sleep(0.2)

    def _consume(self) -> None:
        try:
            for result in self.engine.run(self.task, self._feed):
                self._out.put(result)
        except BaseException as exc:  # given to the caller of the batch
            self._out.put(exc)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """One batch in, its records out (one row per image or video frame, in order).

        Raises:
            DeviceError, PipelineError: the device or the engine failed (the actor is
                then of no more use: Ray restarts or fails the task).
        """
        rows = _rows(batch)
        out: dict[str, list[Any]] = {name: [] for name in SCHEMA}
        if not rows:
            return out
        row_of: list[int] = []
        mark = self._feed.put(self._items(rows, row_of))
        got = 0
        while not (mark.read.is_set() and got >= mark.items):
            try:
                value = self._out.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive():
                    raise RuntimeError("axrun's pipeline ended") from None
                continue
            if isinstance(value, BaseException):
                raise value
            _append(out, row_of[got], value)
            got += 1
        return out

    def _items(self, rows: list[dict[str, Any]], row_of: list[int]) -> Iterator[Item]:
        for index, row in enumerate(rows):
            for item in self._row_items(row):
                row_of.append(index)
                yield item

    def _row_items(self, row: dict[str, Any]) -> Iterator[Item]:
        path = str(row["path"]) if row.get("path") else None
        source = str(row.get("source") or path or "<bytes>")
        size, mtime, page = row.get("size"), row.get("mtime"), row.get("page")
        known: dict[str, Any] = {
            "size": None if size is None else int(float(size)),
            "mtime": None if mtime is None else float(mtime),
            "page": None if page is None else int(float(page)),
            "background": self.sources.background}
        known["frame"] = known["page"]  # a page's frame is its page
        if row.get("error_type"):
            yield Item(source, error=InputError(str(row.get("error_message") or ""),
                                                str(row["error_type"])), **known)
        elif row.get("bytes") is not None:
            yield Item(source, data=bytes(row["bytes"]), **known)
        elif path is not None and (is_video(Path(path)) or "://" in path):
            for item in expand([path], self.sources):  # a video: one item per frame
                yield dataclasses.replace(item, source=source)
        elif path is not None:  # exactly this file (never a list, folder or glob)
            yield _file_item(path, source, known)
        else:
            yield Item(source, error=InputError("a row with neither bytes nor a path",
                                                "not_found"))

    def close(self) -> None:
        """End the pipeline and release the device (Ray ending the actor does too)."""
        self._feed.close()
        self._thread.join(timeout=30)
        self.engine.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _file_item(path: str, source: str, known: dict[str, Any]) -> Item:
    """The image file ``path`` as the input named ``source``: read here, decoded by the
    engine; a failure to read it is its error, said of ``source``."""
    name = os.fsencode(path)
    try:
        data = read_bytes(path, None if is_regular_file(name) else MAX_READ_BYTES)
    except InputError as exc:
        return Item(source, error=InputError(str(exc).replace(path, source), exc.kind),
                    **known)
    return Item(source, data=data, **known)


def _rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """A batch in any of Ray's formats (a dict of columns, pandas, pyarrow) as rows;
    missing values (None, or the NaN a column of numbers and None gets) as None."""
    if hasattr(batch, "to_pylist"):  # pyarrow.Table
        rows = list(batch.to_pylist())
    elif hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas.DataFrame
        rows = list(batch.to_dict("records"))
    else:
        columns = {k: list(v) for k, v in batch.items()}
        n = len(next(iter(columns.values()), []))
        rows = [{k: v[i] for k, v in columns.items()} for i in range(n)]
    return [{k: None if _missing(v) else v for k, v in row.items()} for row in rows]


def _missing(value: Any) -> bool:
    """None, an empty string, or NaN (what a column of None becomes in a batch)."""
    if value is None or (isinstance(value, str) and not value):
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def _append(out: dict[str, list[Any]], row: int, result: Result) -> None:
    record = result.to_dict()
    error = record.get("error") or {}
    out["row"].append(row)
    out["source"].append(record["source"])
    out["frame"].append(record["frame"])
    out["time_s"].append(record["time_s"])
    out["ok"].append(result.error is None)
    out["error_type"].append(error.get("type"))
    out["error_message"].append(error.get("message"))
    out["record"].append(dumps_record(record))


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    """The record a :data:`SCHEMA` row carries."""
    return dict(json.loads(row["record"]))
