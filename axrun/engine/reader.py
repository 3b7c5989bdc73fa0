"""Reading the input: one thread at a time takes the next batch into a free input set.

Jobs are numbered as they are read, so the numbers are the input order. A host thread
that finds another one reading (maybe waiting on a slow pipe) does not wait for it:
it goes back to its other work, and its work signal is given back when the reader is
done (:meth:`InputReader.read`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable

import numpy as np

from axrun.engine.jobs import Control, End, Job, Wake, take
from axrun.engine.schedule import GROUP, batches
from axrun.sources import Item


class InputReader:
    """The input stream of one run, cut into batches of ``batch`` items.

    ``may_wait``: reading may wait on the outside world (a pipe, a camera): then one
    batch is read at a time; else up to a group of :data:`GROUP` consecutive batches
    (one worker wake-up per group). ``free_set`` gives a free input set or None;
    ``signal`` puts a work signal back; ``ended`` is told :class:`End` once, when the
    input ends, fails, or a stop is requested.
    """

    def __init__(self, items: Iterable[Item], batch: int, may_wait: bool, control: Control,
                 free_set: Callable[[], list[np.ndarray] | None],
                 signal: Callable[[], None], ended: Callable[[End], None]) -> None:
        self.may_wait = may_wait
        self._batches: Generator[list[Item], None, None] = batches(items, batch)
        self._control = control
        self._free_set, self._signal, self._ended = free_set, signal, ended
        self._lock = threading.Lock()  # held by the one thread reading the input
        self.inside: threading.Thread | None = None  # that thread, while inside next()
        # One token per signal used up by a thread that found the lock taken: the
        # reader gives each back when it is done (see read()).
        self._missed: queue.SimpleQueue[Wake] = queue.SimpleQueue()
        self.count = 0  # batches read so far
        self.exhausted = False
        self.error: BaseException | None = None  # the input stream itself failed

    def read(self, woken: bool) -> list[Job]:
        """The next batch of the input in a free input set, and the batches after it
        that go to the same instance (up to its group, as free sets allow), unless the
        input may wait; none if there is nothing to read now.

        Only if no other thread is reading: else this thread goes back to its other
        work, so that decoding and postprocessing never wait for input. The signal
        that brought it here (``woken``) stands for work still to do, so the reader
        gives it back after releasing the lock: every signal used up this way, however
        many (a thread may find the lock taken many times during one slow read), or
        free sets would wait with no signal and the pipeline would run on the workers'
        idle fillers.
        """
        jobs: list[Job] = []
        if not self._lock.acquire(blocking=False):
            if woken:  # leave a token for the reader, then look once more: it may be done
                self._missed.put(Wake.WORK)
            if not self._lock.acquire(blocking=False):
                return jobs
        try:
            while job := self._read_one():
                jobs.append(job)
                if self.may_wait or (job.index + 1) % GROUP == 0:
                    break
            if self._control.stopped.is_set():
                self._batches.close()  # the run has ended while this thread was reading
        finally:
            self._lock.release()
        # Tokens left before this release (or before a later holder's) are given back
        # by this thread (or that holder): none is forgotten.
        while take(self._missed) is not None:
            self._signal()
        return jobs

    def _read_one(self) -> Job | None:
        """With the lock: the next batch, numbered in input order, in a free input set.
        At the end of the input (or on a stop request, or if reading fails), tell
        ``ended`` how many jobs there were."""
        control = self._control
        if self.exhausted or control.stopped.is_set():
            return None
        if (inputs := self._free_set()) is None:
            return None
        chunk = None
        if not control.graceful.is_set():
            self.inside = threading.current_thread()
            try:
                chunk = next(self._batches, None)
            except Exception as exc:  # the input stream itself failed: end it there
                self.error = exc
            finally:
                self.inside = None
        if control.stopped.is_set():
            return None  # the run ended while waiting for input: what came is not used
        if chunk is None:
            self.exhausted = True
            self._ended(End(self.count))
            return None
        self.count += 1
        return Job(self.count - 1, chunk, inputs)

    def close(self) -> bool:
        """Close the input stream (a video being read is released), unless a thread is
        reading it: then that thread closes it when it returns. Whether it was closed."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._batches.close()
        finally:
            self._lock.release()
        return True
