"""What the pipeline's threads hand each other, and the stop state they share.

- :class:`Job`: one batch of items and the buffers it holds on its way through.
- :class:`End`: the input has ended (how many jobs there were), or the run stops now.
- :class:`Wake`: a signal on the host threads' work queue.
- :class:`Control`: the stop request, the first failure, and waits that check them.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from axrun.errors import AxrunError, InputError, PipelineError
from axrun.preprocess import Geometry
from axrun.results import Prediction
from axrun.sources import Item

POLL_S = 0.05  # every blocking wait checks the stop state this often
T = TypeVar("T")


@dataclass(slots=True)
class Job:
    """Batch ``index`` (0, 1, ... in input order) of ``items``. ``inputs`` is its padded
    int8 input set, held until the caller has its results; ``outputs`` the output set
    the device filled, held while a host thread postprocesses it. Per item, filled by
    preprocessing: ``geometries`` and ``errors`` (one of them None), ``images`` (the
    decoded pixels, when kept); by postprocessing: ``predictions``."""

    index: int
    items: list[Item]
    inputs: list[np.ndarray]
    geometries: list[Geometry | None] = field(default_factory=list)
    errors: list[InputError | None] = field(default_factory=list)
    images: list[np.ndarray | None] = field(default_factory=list)
    predictions: list[Prediction | None] = field(default_factory=list)
    outputs: list[np.ndarray] | None = None


@dataclass(frozen=True, slots=True)
class End:
    """No job after these: ``jobs`` jobs in all; None: stop now, whatever is missing."""

    jobs: int | None


class Wake(enum.Enum):
    """A signal to the host threads: ``WORK`` there is (or may be) a piece of work;
    ``QUIT`` the thread that takes it ends."""

    WORK = enum.auto()
    QUIT = enum.auto()


class Stopped(Exception):
    """The run has stopped while a thread waited."""


def take(q: queue.SimpleQueue[T] | queue.Queue[T]) -> T | None:
    """An item of ``q`` if there is one now, else None (an exception is slower, and
    having nothing is the usual case)."""
    if q.empty():
        return None
    try:
        return q.get_nowait()
    except queue.Empty:  # another thread took it first
        return None


def in_order(receive: Callable[[], Job | list[Job] | End | None],
             order: Iterator[int]) -> Iterator[Job | None]:
    """The jobs numbered by ``order``, in that order, from ``receive()``, which gives
    them in any order (alone or in lists), or :class:`End`, or None (nothing came for
    a while: None is yielded)."""
    ready: dict[int, Job] = {}
    expected, total = next(order), None
    while total is None or expected < total:
        if expected in ready:
            yield ready.pop(expected)
            expected = next(order)
            continue
        got = receive()
        if got is None:
            yield None
        elif isinstance(got, End):
            total = expected if got.jobs is None else got.jobs
        elif isinstance(got, list):
            for job in got:
                ready[job.index] = job
        else:
            ready[got.index] = got


def frame_name(item: Item) -> str:
    """An input as messages name it: ``a.jpg``, or ``clip.mp4 frame 120``."""
    return item.source if item.frame is None else f"{item.source} frame {item.frame}"


def wrapped(exc: BaseException, what: str) -> BaseException:
    """axrun's own errors as they are; anything else as a PipelineError caused by it."""
    if isinstance(exc, AxrunError):
        return exc
    error = PipelineError(f"{what}: {exc!r}")
    error.__cause__ = exc
    return error


class Control:
    """The stop state every thread of a pipeline checks.

    ``stopped``: set at the first failure (which :meth:`fail` keeps) and when the run
    ends; waits through :meth:`get` then raise :class:`Stopped`. ``graceful``: a stop
    was requested (no new input is read; frames in flight still complete).
    """

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.graceful = threading.Event()
        self.graceful_at = 0.0
        self.failure: BaseException | None = None
        self.failed_at = 0.0
        self._lock = threading.Lock()

    def request_stop(self) -> None:
        if not self.graceful.is_set():
            self.graceful_at = time.perf_counter()
            self.graceful.set()

    def fail(self, exc: BaseException) -> None:
        """Stop the run; the first failure is the one the caller gets."""
        with self._lock:
            if self.failure is None:
                self.failure = exc
                self.failed_at = time.perf_counter()
        self.stopped.set()

    def get(self, q: queue.SimpleQueue[T]) -> T:
        """The next item of ``q``, waiting as long as the run goes on.

        Raises:
            Stopped: the run stopped first.
        """
        while True:
            if self.stopped.is_set():
                raise Stopped
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue
