"""The inference engine: the only place frames meet the device.

    with Engine("models/efficientnet-lite0-imagenet") as engine:
        for r in engine.run(task, items):
            ...
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator

from axrun.engine.pipeline import FrameResult, Pipeline, Task
from axrun.engine.plan import DeviceSession, EngineConfig, Plan, open_session, parse_devices
from axrun.engine.process import tune_process
from axrun.engine.stats import StageTimes
from axrun.modelfolder import ModelFolder, load_model_folder
from axrun.runtime import Backend, load_backend
from axrun.sources import Item

log = logging.getLogger("axrun")

__all__ = [
    "DeviceSession",
    "Engine",
    "EngineConfig",
    "FrameResult",
    "Pipeline",
    "Plan",
    "StageTimes",
    "Task",
    "parse_devices",
]


class Engine:
    """A model opened on the device(s), ready to run item streams through tasks."""

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

    def open(self) -> Engine:
        """Connect and load the instances (see :func:`open_session`).

        Also makes process-wide settings for the host work (see
        :mod:`axrun.engine.process`): OpenCV's own threads off, freed frame memory kept.
        """
        tune_process()
        if self.session is None:
            self.session = open_session(self.backend, self.folder, self.config)
            log.info("plan: %s", self.session.plan.describe())
        return self

    def close(self) -> None:
        """Release every device resource."""
        if self.session is not None:
            session, self.session = self.session, None
            session.close()

    def __enter__(self) -> Engine:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def plan(self) -> Plan:
        if self.session is None:
            raise RuntimeError("the engine is not open")
        return self.session.plan

    def pipeline(
        self,
        task: Task,
        stats: StageTimes | None = None,
        on_result: Callable[[FrameResult], None] | None = None,
        keep_images: bool = False,
    ) -> Pipeline:
        """A one-shot pipeline on this engine (see :class:`Pipeline`)."""
        self.open()
        assert self.session is not None
        return Pipeline(self.session, task, self.config, stats, on_result, keep_images)

    def run(
        self, task: Task, items: Iterable[Item], stats: StageTimes | None = None
    ) -> Iterator[FrameResult]:
        """Results for ``items`` in input order (see :meth:`Pipeline.run`)."""
        return self.pipeline(task, stats).run(items)
