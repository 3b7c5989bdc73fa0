"""Device workers: one thread per model instance, the only threads that call ``run()``.

Worker *k* runs its jobs (:func:`~axrun.engine.schedule.jobs_of`) in job order and
calls ``run()`` with a free output set; when the output it gets back holds a job's
result (two calls later with double buffering), it hands that job and output set to
the host threads. When no job comes for :data:`IDLE_S`, or a job's frames all failed,
a filler call pushes out the results still in the device. Workers run little Python:
they mostly wait for the device.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from axrun.engine.jobs import Control, End, Job, Stopped, frame_name, in_order, wrapped
from axrun.engine.schedule import GROUP, LagTracker, jobs_of
from axrun.engine.stats import StageTimes
from axrun.runtime import translate

IDLE_S = 0.1  # a worker with no new job for this long pushes its results out (fillers)


class DeviceWorker:
    """Instance ``k`` of ``n``, fed through :meth:`submit`.

    ``free_outputs`` is the pool of output sets (shared by all workers); ``outputs_back``
    hands a job whose outputs came back to the host threads; ``deliver`` hands a job
    none of whose frames reached the device straight to the caller.
    """

    def __init__(self, k: int, n: int, instance: Any, filler: list[np.ndarray], lag: int,
                 control: Control, stats: StageTimes,
                 device_errors: tuple[type[BaseException], ...],
                 free_outputs: queue.SimpleQueue[list[np.ndarray]],
                 outputs_back: Callable[[Job], None], deliver: Callable[[Job], None]) -> None:
        self.k, self.n, self.instance, self.filler, self.lag = k, n, instance, filler, lag
        self.control, self.stats, self.device_errors = control, stats, device_errors
        self._free_outputs = free_outputs
        self._outputs_back, self._deliver = outputs_back, deliver
        self._inbox: queue.SimpleQueue[list[Job] | End] = queue.SimpleQueue()
        self.calls = 0  # run() calls made, fillers included (written by this thread only)

    def submit(self, jobs: list[Job] | End) -> None:
        """Consecutive jobs of this instance (any group order), or the end of input."""
        self._inbox.put(jobs)

    def _jobs(self) -> Iterator[Job | None]:
        """This worker's jobs in order, as decoding finishes them; None each time no
        job came for :data:`IDLE_S`."""
        inbox, stopped = self._inbox, self.control.stopped

        def receive() -> list[Job] | End | None:
            if stopped.is_set():
                raise Stopped
            try:
                return inbox.get(timeout=IDLE_S)
            except queue.Empty:
                return None

        return in_order(receive, jobs_of(self.k, self.n, GROUP))

    def _run(self, inputs: list[np.ndarray], outputs: list[np.ndarray],
             job: Job | None) -> None:
        t0 = time.perf_counter()
        try:
            self.instance.run(inputs, outputs)
            self.calls += 1
        except self.device_errors as exc:
            where = frame_name(job.items[0]) if job else "a filler frame"
            raise translate(exc, f"run() failed on {where}") from exc
        self.stats.add("device", time.perf_counter() - t0)

    def thread(self) -> None:
        tracker: LagTracker[Job] = LagTracker(self.lag)

        def release_skipped() -> None:
            for skipped in tracker.ready_skipped():
                skipped.predictions = [None] * len(skipped.items)
                self._deliver(skipped)

        def run_and_emit(inputs: list[np.ndarray], job: Job | None) -> None:
            outputs = self.control.get(self._free_outputs)
            self._run(inputs, outputs, job)
            done = tracker.ran()
            if done is None:
                self._free_outputs.put(outputs)  # nothing useful came back (double buffering)
            else:
                done.outputs = outputs
                self._outputs_back(done)
            release_skipped()

        try:
            for job in self._jobs():
                if job is None or None not in job.errors:
                    if job is not None:
                        tracker.skip(job)  # no frame of it goes to the device
                    # The input stalls, or frames fail: a filler call pushes out the
                    # results still in the device (double buffering), so that they
                    # are not held back, nor the failed jobs behind them (which hold
                    # input sets: without this, they could starve the input).
                    if tracker.in_flight:
                        tracker.filler()
                        run_and_emit(self.filler, None)
                    else:
                        release_skipped()
                    continue
                tracker.submit(job)
                run_and_emit(job.inputs, job)
            while tracker.in_flight:
                tracker.filler()
                run_and_emit(self.filler, None)
        except Stopped:
            pass
        except BaseException as exc:
            self.control.fail(wrapped(exc, f"worker {self.k} failed"))
