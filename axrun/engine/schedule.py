"""Scheduling bookkeeping, as plain code that tests can drive without threads.

- :func:`batches` packs items into batches of the model's batch size.
- :class:`LagTracker` keeps the double-buffer books of one instance: which job's
  result the output of each ``run()`` call holds, and how many filler calls drain it.
- Jobs go to instances round-robin, in groups of consecutive jobs (job *j* → instance
  ``j // group % n``); every instance returns its jobs in order, and the caller
  restores the input order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable, Iterator
from itertools import count, islice
from typing import Generic, TypeVar

T = TypeVar("T")
J = TypeVar("J")

DOUBLE_BUFFER_LAG = 2
# Consecutive jobs that go to the same instance, handed over together: one worker
# wake-up per group instead of one per job (2.7-2.9 % more frames/s at 2 than at 1;
# 3 was no faster, 4 slower).
GROUP = 2


def batches(items: Iterable[T], size: int) -> Generator[list[T], None, None]:
    """Consecutive lists of ``size`` items; the last may be shorter. If ``items``
    fails, the items read before are yielded first, then the error is raised. Closing
    this generator closes ``items`` too, if it can be closed (releasing what it holds)."""
    it = iter(items)
    try:
        while True:
            chunk: list[T] = []
            try:
                chunk.extend(islice(it, size))
            except Exception:
                if chunk:
                    yield chunk  # what was read before the failure still counts
                raise
            if not chunk:
                return
            yield chunk
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def instance_for(job_index: int, instances: int, group: int = 1) -> int:
    """Round-robin by groups of ``group`` consecutive jobs: which instance runs job
    ``job_index``."""
    return job_index // group % instances


def jobs_of(instance: int, instances: int, group: int = 1) -> Iterator[int]:
    """The job indices instance ``instance`` runs, in order (see :func:`instance_for`)."""
    for g in count(instance, instances):
        yield from range(g * group, (g + 1) * group)


class LagTracker(Generic[J]):
    """Double-buffer books of one instance.

    With lag *L*, the output written by call *c* holds the result of the input of call
    *c - L*; the first *L* calls return nothing useful. Jobs that skip the device (all
    their frames failed) are kept in order with the rest.
    """

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self._calls = 0
        self._queue: deque[tuple[J, int | None]] = deque()  # (job, call whose output holds it)

    def submit(self, job: J) -> None:
        """Record a ``run()`` call carrying ``job``; call before the matching :meth:`ran`."""
        self._calls += 1
        self._queue.append((job, self._calls + self.lag))

    def skip(self, job: J) -> None:
        """Record a job that does not go to the device."""
        self._queue.append((job, None))

    def filler(self) -> None:
        """Record a ``run()`` call with a filler input (drains the pipeline)."""
        self._calls += 1

    def ran(self) -> J | None:
        """The job whose result the output of the latest call holds, if any."""
        if self._queue and self._queue[0][1] == self._calls:
            return self._queue.popleft()[0]
        return None

    def ready_skipped(self) -> Iterator[J]:
        """Skipped jobs now at the front (everything before them has been returned)."""
        while self._queue and self._queue[0][1] is None:
            yield self._queue.popleft()[0]

    @property
    def in_flight(self) -> int:
        """Jobs submitted to the device whose results have not come back yet."""
        return sum(1 for _, due in self._queue if due is not None)
