"""``--ray [ADDRESS]``: ``axrun classify|detect`` on a Ray cluster (:mod:`axrun.ray`),
the records written by this process, in input order, through the same outputs,
progress and summary as a run on this machine.

The inputs are listed here (one row per file, one per video: an actor reads it whole)
and read by the actors, so on a cluster of several machines they must be on a shared
filesystem; the model travels with the job (:func:`axrun.ray.pack`). ``local`` starts
a cluster on this machine whose ``metis`` resource is the devices this machine's
backend sees (the emulator's, without a card).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from axrun.cli.shared import CommonArgs, RunnerFactory
from axrun.engine import EngineConfig
from axrun.errors import (
    AxrunError,
    DeviceBusy,
    DeviceError,
    InputError,
    PipelineError,
    UsageError,
)
from axrun.modelfolder import ModelFolder
from axrun.resume import ResumeState
from axrun.run import RunPolicy, RunSummary
from axrun.runtime import load_backend
from axrun.sinks import Sink, output_failed
from axrun.sources import Item

RAY_HINT = "pip install 'axrun[ray]' (Ray Data, ray==2.60.0)"
BATCH = 128  # inputs per batch an actor gets, at most (bench_ray: 32 ran at a third of 128)
ENV = ("AXRUN_BACKEND", "AXRUN_EMULATOR_DEVICES", "AXRUN_EMULATOR_LATENCY_MS",
       "AXRUN_EMULATOR_COMPUTE", "AXRUN_EMULATOR_STATE_DIR", "AXRUN_MODELS")


def whole_video(path: Path, stride: int = 1) -> Iterator[Item]:
    """A video as one row (an actor reads its frames): the ``video`` reader of
    :func:`axrun.sources.expand` for a Ray job."""
    yield Item(str(path))


def _ray() -> Any:
    # never a cluster started behind our back (a call after shutdown would start one)
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise UsageError(f"--ray needs Ray: {RAY_HINT}") from None


class _Recorded:
    """A record that came back from an actor, as the record sinks take a result."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        err = record.get("error")
        self.error = InputError(err["message"], err["type"]) if err else None
        self.item = Item(record["source"], frame=record.get("frame"),
                         size=record.get("file_size"), mtime=record.get("file_mtime"))
        self.prediction = self.image = self.geometry = None

    def to_dict(self) -> dict[str, Any]:
        return self.record


class RayRun:
    """One job on a Ray cluster; the interface of :class:`axrun.run.Run` (called on the
    items, ``summary``, ``stop``). ``skip`` drops records of frames already recorded
    (``--resume``: a video is read whole again); ``limit``: at most this many records
    (``--limit`` counts frames, and videos are rows here)."""

    def __init__(self, sinks: Sequence[Sink], policy: RunPolicy, *, address: str,
                 folder: ModelFolder, task: str, options: dict[str, Any],
                 config: EngineConfig, vid_stride: int, background: tuple[int, int, int],
                 skip: Callable[[Item], bool] | None, limit: int | None = None) -> None:
        self.sinks, self.policy, self.skip, self.limit = list(sinks), policy, skip, limit
        self.summary = RunSummary()
        self._stop: str | None = None
        self.ray = _ray()
        import axrun.ray as axray

        self._axray = axray
        self._started = address == "local"
        env = {k: os.environ[k] for k in ENV if k in os.environ}
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False,
                 "include_dashboard": False, "runtime_env": {"env_vars": env}}
        try:
            if self._started:
                devices = _free_devices(config)
                self.ray.init(num_cpus=os.cpu_count() or 1, resources={"metis": devices},
                              **quiet)
            else:
                self.ray.init(address=address, **quiet)
        except AxrunError:
            raise
        except Exception as exc:  # Ray's own, for an address it cannot reach
            raise DeviceError(f"--ray {address}: cannot join the cluster: "
                              f"{_first_line(exc)}") from exc
        cards = int(self.ray.cluster_resources().get("metis", 0))
        if cards < 1:
            self.ray.shutdown()
            raise UsageError(f"the Ray cluster at {address} has no 'metis' resource: start "
                             "each node with ray start --resources '{\"metis\": N}' (N: "
                             "its cards)")
        self.actors = cards
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        self._kwargs = {"model": self.ray.put(axray.pack(folder)), "task": task,
                        "options": options,
                        "config": config, "vid_stride": vid_stride, "background": background}
        self._cpus = max(1, cpus // cards)
        self.summary.backend = f"Ray at {address}: {cards} actor(s), one device each, " \
            f"{self._cpus} CPU(s) each"
        logging.getLogger("axrun").info("plan: %s", self.summary.backend)

    def stop(self, reason: str = "interrupted") -> None:
        self._stop = self._stop or reason

    def __call__(self, items: Iterable[Item]) -> RunSummary:
        start = time.perf_counter()
        try:
            self._run(items)
        except (AxrunError, BrokenPipeError, KeyboardInterrupt):
            raise
        except Exception as exc:  # an actor died, a node was lost: one line, not Ray's
            raise PipelineError(f"the Ray job failed: {_first_line(exc)}") from exc
        finally:
            self.summary.wall_s = time.perf_counter() - start
            self.summary.stopped = self._stop
            self.ray.shutdown()
        return self.summary

    def _run(self, items: Iterable[Item]) -> None:
        rows = [_row(item) for item in items]
        if not rows:
            return
        data = importlib.import_module("ray.data")
        for name in ("ray", "ray.data"):  # this command says what happens, not Ray
            logging.getLogger(name).setLevel(logging.CRITICAL)
        context = data.DataContext.get_current()
        context.print_on_execution_start = False
        context.execution_options.preserve_order = True  # records in input order
        context.enable_progress_bars = False
        # batches small enough that every actor gets several (a video is one row)
        batch = max(1, min(BATCH, len(rows) // (4 * self.actors)))
        with warnings.catch_warnings():  # max_restarts has no named parameter in 2.60
            warnings.simplefilter("ignore", DeprecationWarning)
            blocks = -(-len(rows) // batch)
            out = data.from_items(rows, override_num_blocks=blocks).map_batches(
                self._axray.Predictor, batch_size=batch,
                compute=data.ActorPoolStrategy(size=self.actors), num_cpus=self._cpus,
                resources={"metis": 1}, fn_constructor_kwargs=self._kwargs,
                # an actor that dies is not restarted: the job fails, its device is freed
                max_restarts=0)
        for row in _rows_waking(out.iter_rows(), lambda: self._stop is not None):
            result = _Recorded(json.loads(row["record"]))
            if self.skip is not None and self.skip(result.item):
                continue
            if self.limit is not None and self.summary.inputs >= self.limit:
                return
            self._write(result)

    def _write(self, result: _Recorded) -> None:
        summary = self.summary
        summary.inputs += 1
        for sink in self.sinks:
            try:
                sink.write(result)  # type: ignore[arg-type]  # the record sinks' part
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise output_failed(sink, exc) from exc
        if result.error is not None:
            summary.failed += 1
            summary.failures[result.error.kind] += 1
            if self.policy.limit is not None and summary.failed >= self.policy.limit:
                self.stop("max-errors")


def _first_line(exc: BaseException) -> str:
    """An exception's first meaningful line (Ray's messages run over many)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _free_devices(config: EngineConfig) -> int:
    """The devices of this machine a local cluster gets (those ``--devices`` names, or
    all), refused when every one of them has its cores held (as one process would)."""
    statuses = load_backend(os.environ.get("AXRUN_BACKEND", "auto")).list_devices()
    chosen = [s for i, s in enumerate(statuses)
              if config.devices is None or i in config.devices or s.name in config.devices]
    free = [s for s in chosen if s.cores_free is None or s.cores_free >= config.aipu_cores]
    if chosen and not free:
        held = "; ".join(f"{s.name}: {s.in_use_by}" for s in chosen if s.in_use_by)
        raise DeviceBusy(f"no device has {config.aipu_cores} core(s) free for --ray local"
                         + (f" ({held})" if held else "") + "; wait for it to finish, or "
                         "pick other devices")
    return len(free)


def _rows_waking(rows: Iterator[dict[str, Any]], stopped: Callable[[], bool]) -> \
        Iterator[dict[str, Any]]:
    """``rows``, read by a thread of their own: this thread wakes every 0.1 s (a
    signal's handler runs, Ctrl-C stops the run at once) and ends when ``stopped``."""
    box: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue(maxsize=64)

    def pull() -> None:
        try:
            for row in rows:
                box.put(row)
            box.put(None)
        except BaseException as exc:  # given to the caller
            box.put(exc)

    threading.Thread(target=pull, name="axrun-ray-rows", daemon=True).start()
    while not stopped():
        try:
            value = box.get(timeout=0.1)
        except queue.Empty:
            continue
        if value is None:
            return
        if isinstance(value, BaseException):
            raise value
        yield value


def _row(item: Item) -> dict[str, Any]:
    """An input as a row of the job: the name it is recorded under, the file an actor
    reads (absolute: actors do not share this process's working folder), or the error
    found here."""
    # missing values as "", numbers as text: a column with None in it comes to the actor
    # as float32 (a time would be rounded)
    row: dict[str, Any] = {"source": item.source, "path": "", "error_type": "",
                           "error_message": "",
                           "size": "" if item.size is None else str(item.size),
                           "mtime": "" if item.mtime is None else repr(item.mtime),
                           "page": "" if item.page is None else str(item.page)}
    if item.error is not None:
        row["error_type"], row["error_message"] = item.error.kind, str(item.error)
    else:
        row["path"] = item.source if "://" in item.source else os.path.abspath(item.source)
    return row


def ray_runner(args: CommonArgs, backend: str, folder: ModelFolder, task: str,
               options: dict[str, Any]) -> RunnerFactory:
    """Runs on the Ray cluster ``--ray`` names (its actors use ``backend``)."""
    if backend != "auto":
        os.environ["AXRUN_BACKEND"] = backend  # given to the actors with the job

    def make(sinks: Sequence[Sink], policy: RunPolicy, state: ResumeState | None) -> RayRun:
        assert args.ray is not None
        return RayRun(sinks, policy, address=args.ray, folder=folder, task=task,
                      options=options, config=args.engine_config(),
                      vid_stride=args.vid_stride, background=args.source_options().background,
                      skip=state.skip if state else None, limit=args.limit)

    return make
