"""The inference engine: the only place frames meet the device.

    with Engine("efficientnet-lite0-imagenet") as engine:   # a path, or a model's name
        for result in engine.run(task, items):
            ...

Most programs want :func:`axrun.load` instead, which picks the task from the model.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterable, Iterator

from axrun.engine.pipeline import Pipeline
from axrun.engine.plan import DeviceSession, EngineConfig, Plan, open_session, parse_devices
from axrun.engine.stats import StageTimes
from axrun.modelfolder import ModelFolder, load_model_folder
from axrun.results import Result
from axrun.runtime import Backend, load_backend
from axrun.sources import Item
from axrun.tasks.base import Task

log = logging.getLogger("axrun")

__all__ = [
    "DeviceSession",
    "Engine",
    "EngineConfig",
    "Pipeline",
    "Plan",
    "StageTimes",
    "Task",
    "parse_devices",
]


class Engine:
    """A model opened on the device(s), ready to run item streams through tasks.

    The device is reserved from :meth:`open` (or the first run) until :meth:`close`,
    the end of a ``with`` block, the engine being garbage-collected, or the
    interpreter's exit, whichever comes first. Opening changes no process-wide setting
    (see :func:`axrun.tune_process` for those that make host work faster).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | ModelFolder,
        *,
        backend: str | Backend | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self.folder = model if isinstance(model, ModelFolder) else load_model_folder(model)
        self.backend = backend if isinstance(backend, Backend) else load_backend(backend)
        self.config = config or EngineConfig()
        self.session: DeviceSession | None = None
        self._running: weakref.WeakSet[Pipeline] = weakref.WeakSet()
        self._release: weakref.finalize[[DeviceSession, weakref.WeakSet[Pipeline]], Engine] | \
            None = None

    def open(self) -> Engine:
        """Connect and load the instances (see :func:`open_session`); idempotent.

        Raises:
            DeviceBusy: the cores are reserved (by another process, or another engine
                still open in this one). DeviceError, ModelError: as the backend says.
        """
        if self.session is None:
            self.session = open_session(self.backend, self.folder, self.config)
            # Released at exit or when this engine is collected, if not closed before.
            self._release = weakref.finalize(self, _release, self.session, self._running)
            log.info("plan: %s; backend: %s", self.session.plan.describe(),
                     self.backend.describe())
        return self

    def close(self) -> None:
        """Release every device resource (idempotent). A run still going on (an
        iterator of :meth:`run` not finished) is ended first: its next step raises
        :class:`~axrun.errors.PipelineError`."""
        if self.session is not None:
            self.session = None
            assert self._release is not None
            self._release()

    def __enter__(self) -> Engine:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def plan(self) -> Plan:
        if self.session is None:
            raise RuntimeError("the engine is not open")
        return self.session.plan

    def pipeline(self, task: Task, stats: StageTimes | None = None,
                 keep_images: bool = False) -> Pipeline:
        """A one-shot pipeline on this engine (see :class:`Pipeline`)."""
        self.open()
        assert self.session is not None
        pipeline = Pipeline(self.session, task, self.config, stats, keep_images)
        self._running.add(pipeline)
        return pipeline

    def run(self, task: Task, items: Iterable[Item], stats: StageTimes | None = None,
            keep_images: bool = False) -> Iterator[Result]:
        """Results for ``items`` in input order (see :meth:`Pipeline.run`)."""
        return self.pipeline(task, stats, keep_images).run(items)


def _release(session: DeviceSession, running: weakref.WeakSet[Pipeline]) -> None:
    """End the runs still going on (their threads may be inside ``run()``), then release
    the device: at :meth:`Engine.close`, at garbage collection or at exit."""
    for pipeline in list(running):
        pipeline.cancel("the engine was closed during this run")
    session.close()
