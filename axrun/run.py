"""A whole run: items → engine → results → sinks, with the error policy and a summary.

This is what ``axrun classify`` and ``axrun detect`` call; Python users can call it
too, with the sinks of :mod:`axrun.sinks` or their own (see :class:`~axrun.sinks.Sink`).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from axrun.engine import Engine, Pipeline, StageTimes
from axrun.errors import InputError, ParameterError
from axrun.sinks import Sink, output_failed
from axrun.sources import Item
from axrun.tasks.base import Task


@dataclass(frozen=True)
class RunPolicy:
    """When to stop early: after ``max_errors`` failed inputs, or the first (``fail_fast``)."""

    max_errors: int | None = None
    fail_fast: bool = False

    def __post_init__(self) -> None:
        if self.max_errors is not None and self.max_errors < 1:
            raise ParameterError("max_errors", f"must be at least 1 (got {self.max_errors})")

    @property
    def limit(self) -> int | None:
        return 1 if self.fail_fast else self.max_errors


@dataclass
class RunSummary:
    """What happened: counts, failures by type, timing, and the device plan."""

    inputs: int = 0
    failed: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    wall_s: float = 0.0
    stats: StageTimes = field(default_factory=StageTimes)
    plan: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    stopped: str | None = None  # "max-errors", "interrupted"

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "failed": self.failed,
            "failures": dict(self.failures),
            "wall_s": round(self.wall_s, 3),
            "inputs_per_s": round(self.inputs / self.wall_s, 2) if self.wall_s else None,
            "stage_share": {k: round(v, 4) for k, v in self.stats.shares().items()},
            "backend": self.backend,
            "plan": self.plan,
            "stopped": self.stopped,
        }


class Run:
    """One run of a task over items, each result written to every sink in turn (an
    annotated image before the record that names it: give the sinks in that order). A
    sink that cannot take an input raises :class:`InputError`: the sinks after it get
    that error as the input's result.
    :meth:`stop` (e.g. from a signal handler) ends it gracefully: no new input is
    taken, in-flight frames still get their records. Sinks are closed by their owner."""

    def __init__(self, engine: Engine, task: Task, sinks: Sequence[Sink],
                 policy: RunPolicy | None = None) -> None:
        self.engine = engine
        self.task = task
        self.sinks = list(sinks)
        self.policy = policy or RunPolicy()
        self.summary = RunSummary(stats=StageTimes())
        self._pipeline: Pipeline | None = None
        self._stop_reason: str | None = None

    def stop(self, reason: str = "interrupted") -> None:
        self._stop_reason = self._stop_reason or reason
        if self._pipeline is not None:
            self._pipeline.request_stop()

    def __call__(self, items: Iterable[Item]) -> RunSummary:
        """Run to the end (or to a stop); every record produced is written."""
        summary = self.summary
        start = time.perf_counter()
        keep_images = any(sink.needs_images for sink in self.sinks)
        self._pipeline = self.engine.pipeline(self.task, summary.stats, keep_images)
        summary.plan = self.engine.plan.as_dict()
        summary.backend = self.engine.backend.describe()
        if self._stop_reason:
            self._pipeline.request_stop()
        try:
            for result in self._pipeline.run(items):
                summary.inputs += 1
                for sink in self.sinks:
                    try:
                        sink.write(result)
                    except InputError as exc:
                        # this input's output cannot be written (a name another input of
                        # the run has): the sinks after it get the error instead
                        result = dataclasses.replace(result, prediction=None, error=exc)
                    except BrokenPipeError:
                        raise  # the reader went away: the caller decides (`| head`)
                    except OSError as exc:
                        raise output_failed(sink, exc) from exc
                if result.error is not None:
                    summary.failed += 1
                    summary.failures[result.error.kind] += 1
                    limit = self.policy.limit
                    if limit is not None and summary.failed >= limit:
                        self.stop("max-errors")
        finally:
            summary.wall_s = time.perf_counter() - start
            summary.stopped = self._stop_reason
        return summary
