"""The pipeline: input → host threads → one worker per instance → results in input order.

A :class:`Pipeline` coordinates three kinds of thread, each in a module of its own:

- the **reader** (:mod:`axrun.engine.reader`): whichever host thread takes the next
  batch of the input into a free input set, numbering jobs in input order;
- the **host threads** (:mod:`axrun.engine.host`, ``EngineConfig.threads``, default
  one per CPU): decode + preprocess a job's frames straight into its input set (OpenCV
  releases the GIL) and hand it to its instance, ``j // GROUP % n``; postprocess jobs
  whose outputs came back;
- the **device workers** (:mod:`axrun.engine.worker`), one per instance, the only
  threads that call ``run()``;

and the **caller's thread**, in :meth:`Pipeline.run`: it yields results in input
order and gives each job's input set back. While its next result is not there, it is
one of the host threads (one fewer is started) and does their work, unless the input
may wait on the outside world: it must never wait there while results are ready.

Buffers: an input set stays with its job until the device has returned that job's
result, an output set until its results are postprocessed: no buffer is written while
``run()`` may still read it, or read while ``run()`` may write it. At most
:attr:`Pipeline.max_in_flight` jobs hold buffers, so memory does not grow with the
input length. Hand-offs are C ``SimpleQueue``s; every blocking wait lasts at most
:data:`~axrun.engine.jobs.POLL_S` before checking the stop state (:class:`Control`).
The first failure stops the run; outputs already back are still postprocessed
(:data:`~axrun.engine.host.SETTLE_S`); everything joins; the caller gets the error with
the frame it concerned.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from axrun.engine.host import SETTLE_S, HostWork
from axrun.engine.jobs import POLL_S, Control, End, Job, Wake, in_order, take, wrapped
from axrun.engine.plan import DeviceSession, EngineConfig
from axrun.engine.reader import InputReader
from axrun.engine.schedule import DOUBLE_BUFFER_LAG, GROUP, instance_for
from axrun.engine.stats import StageTimes
from axrun.engine.worker import DeviceWorker
from axrun.errors import PipelineError
from axrun.results import Result
from axrun.sources import Item
from axrun.tasks.base import Task

JOIN_S = 5.0
GRACE_S = 1.5  # after request_stop(), in-flight frames get this long, then are abandoned


def may_wait(items: Iterable[Item]) -> bool:
    """Whether reading ``items`` may wait on the outside world: only when it says so
    (a ``may_wait`` attribute that is true, as :func:`axrun.sources.expand` sets for
    stdin, pipes, URLs and cameras). Any other iterable is read at full speed."""
    return bool(getattr(items, "may_wait", False))


class Pipeline:
    """Runs items through an opened :class:`DeviceSession` with a :class:`Task`.

    Use :meth:`run` once. :meth:`request_stop` (from any thread, e.g. a signal
    handler) stops taking new input; frames already in flight still complete.
    ``keep_images`` returns each frame's decoded pixels with its result (for
    annotation); memory stays bounded by the frames in flight.
    """

    def __init__(self, session: DeviceSession, task: Task, config: EngineConfig,
                 stats: StageTimes | None = None, keep_images: bool = False) -> None:
        self.session = session
        self.task = task
        self.config = config
        self.stats = stats or StageTimes()
        self.control = Control()
        n = len(session.instances)
        # For the caller: a queue.Queue, whose timed wait is a lock's. The caller's
        # thread is the one that runs signal handlers, and on CPython 3.11 a handler
        # that outlasts the rest of a SimpleQueue.get(timeout=...) turns it into a
        # wait without end (a negative timeout): Ctrl-C then hung the run.
        self._done: queue.Queue[Job | End] = queue.Queue()
        self._free_outputs: queue.SimpleQueue[list[np.ndarray]] = queue.SimpleQueue()
        self.host = HostWork(task, session.plan.batch, self.control, self.stats, keep_images,
                             reduce=config.decode == "reduced",
                             dispatch=self._dispatch, deliver=self._done.put,
                             free_outputs=self._free_outputs.put,
                             workers_alive=self._workers_alive)
        self._lag = lag = DOUBLE_BUFFER_LAG if session.plan.double_buffer else 0
        self.workers = [
            DeviceWorker(k, n, instance, self._blank(session.input_infos), lag, self.control,
                         self.stats, session.backend.errors, self._free_outputs,
                         outputs_back=self.host.outputs_back, deliver=self._done.put)
            for k, instance in enumerate(session.instances)]
        for _ in range(self.max_in_flight):
            self.host.input_set_free(self._blank(session.input_infos))
        # One per job in flight, plus the one each worker's current run() writes into.
        for _ in range(self.max_in_flight + n):
            self._free_outputs.put(self._blank(session.output_infos))
        self._worker_threads: list[threading.Thread] = []
        self._host_threads: list[threading.Thread] = []
        self._reader: InputReader | None = None
        self._delivered = 0  # jobs whose results the caller has had
        self._caller_helps = False  # set by run()
        self._used = False

    @staticmethod
    def _blank(infos: Sequence[Any]) -> list[np.ndarray]:
        """A buffer set: one padded int8 array per tensor, at its zero point."""
        return [np.full(i.shape, i.zero_point, np.int8) for i in infos]

    @property
    def max_in_flight(self) -> int:
        """Jobs (batches) that can be between the input stream and the caller at once:
        per instance, those in the device, a group being collected and ``queue_depth``
        decoded ahead; plus a group for each host thread. (A job is delivered only once
        its instance has run ``lag`` more: its instance's next group, ``n`` groups on,
        must fit too, or the pipeline would wait for idle fillers.)"""
        return (len(self.workers) * (self._lag + GROUP + self.config.queue_depth)
                + self.config.threads * GROUP)

    def request_stop(self) -> None:
        """Stop taking new input; frames in flight complete and are returned, unless
        that takes longer than :data:`GRACE_S` — then they are abandoned."""
        self.control.request_stop()

    # -- hand-offs between the pieces ----------------------------------------------------

    def _dispatch(self, jobs: list[Job]) -> None:
        self.workers[instance_for(jobs[0].index, len(self.workers), GROUP)].submit(jobs)

    def _ended(self, end: End) -> None:
        """The input has ended: every worker and the caller learn how many jobs."""
        for worker in self.workers:
            worker.submit(end)
        self._done.put(end)

    def _workers_alive(self) -> bool:
        return any(t.is_alive() for t in self._worker_threads)

    # -- the caller's side ----------------------------------------------------------------

    def _collect(self) -> Job | End:
        """The next finished job (any order) or the end; after a failure, what finishes
        within :data:`SETTLE_S`, then the failure."""
        control, reader = self.control, self._reader
        assert reader is not None
        while True:
            failure = control.failure
            if failure is not None:
                # Wait while a thread may still deliver something (and for SETTLE_S at
                # most); after the last one ended, look once more.
                busy = any(t.is_alive() for t in self._busy_threads())
                try:
                    return self._done.get(timeout=POLL_S)
                except queue.Empty:
                    if busy and time.perf_counter() - control.failed_at < SETTLE_S:
                        continue
                    raise failure from None
            if control.graceful.is_set() and (
                    time.perf_counter() - control.graceful_at > GRACE_S
                    or (reader.inside is not None and self._delivered == reader.count)):
                # Stopping: what has finished is delivered, what has not is abandoned
                # (at once when every job read was delivered and a thread waits inside
                # the input: nothing else can come).
                done = take(self._done)
                return End(None) if done is None else done
            if self._caller_helps:  # do host work until the next job is there
                if (done := take(self._done)) is not None:
                    return done
                try:
                    if work := self.host.step(woken=False):
                        self.host.used(work)
                        continue
                except Exception as exc:  # as in a host thread; KeyboardInterrupt goes up
                    control.fail(wrapped(exc, "host work in the caller's thread failed"))
                    continue
            try:
                return self._done.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def _busy_threads(self) -> list[threading.Thread]:
        """The pipeline's threads, except one waiting inside the input stream (a pipe
        may never deliver): nothing the caller waits for can come from that one."""
        inside = self._reader.inside if self._reader is not None else None
        return [t for t in self._worker_threads + self._host_threads if t is not inside]

    def run(self, items: Iterable[Item]) -> Iterator[Result]:
        """Yield one :class:`~axrun.results.Result` per item, in input order.

        While it waits for the next result, the caller's thread does host work, also
        reading ``items``, unless ``items`` may wait on the outside world (see
        :func:`may_wait`): then only the host threads read it, one batch at a time,
        so that results are never held up by input that has not come yet.

        Raises:
            DeviceError, PipelineError: the first failure, naming the frame; every
                thread has been joined by then.
        """
        if self._used:
            raise RuntimeError("a Pipeline runs once; make a new one")
        self._used = True
        start = time.perf_counter()
        waits = may_wait(items)
        self._caller_helps = self.config.threads > 1 and not waits
        # At least two host threads for an input that may wait: one of them may wait
        # inside it, and the results already back must not wait with it.
        hosts = max(2, self.config.threads) if waits else \
            self.config.threads - self._caller_helps
        reader = self._reader = InputReader(
            items, self.session.plan.batch, waits, self.control,
            free_set=self.host.free_input_set, signal=self.host.signal, ended=self._ended)
        self.host.reader = reader
        self._worker_threads = [threading.Thread(target=w.thread, name=f"axrun-worker-{w.k}",
                                                 daemon=True) for w in self.workers]
        self._host_threads = [threading.Thread(target=self.host.thread, name=f"axrun-host-{i}",
                                               daemon=True) for i in range(hosts)]
        for t in self._worker_threads + self._host_threads:
            t.start()
        try:
            for job in in_order(self._collect, itertools.count()):
                assert job is not None  # _collect waits: it never gives None
                self._delivered += 1
                self.host.input_set_free(job.inputs)
                for item, prediction, error, geometry, image in zip(
                        job.items, job.predictions, job.errors, job.geometries, job.images,
                        strict=True):
                    self.stats.frames += 1
                    self.stats.failed += error is not None
                    yield Result(item, None if error else prediction, error, geometry, image)
            if reader.error is not None:  # everything read before it was delivered
                raise wrapped(reader.error, "reading inputs failed")
        finally:
            self._shutdown()
            self.stats.wall_s += time.perf_counter() - start

    def cancel(self, reason: str) -> None:
        """From any thread: end the run now, its caller getting a :class:`PipelineError`
        saying ``reason``; its threads have ended when this returns (the device can be
        released). Nothing happens to a run that has ended."""
        self.control.fail(PipelineError(reason))
        self._shutdown()

    def _shutdown(self) -> None:
        """End every thread (idempotent); close the input stream if no thread is in it."""
        for _ in self._host_threads:
            self.host.signals.put(Wake.QUIT)  # host threads end at once (after the signals before)
        self.control.stopped.set()
        # Abandoning a stop: threads blocked in run() are daemons, do not wait them out;
        # nor one blocked inside the input stream.
        control = self.control
        budget = 0.3 if control.graceful.is_set() and control.failure is None else JOIN_S
        deadline = time.perf_counter() + budget
        for t in self._busy_threads():
            t.join(max(0.0, deadline - time.perf_counter()))
        # Close the input stream where possible (a video's read-ahead thread ends with
        # it); else the thread inside it closes it on return.
        if self._reader is not None:
            self._reader.close()
