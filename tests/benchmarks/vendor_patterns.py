"""The two scheduling patterns of the vendor's examples, for comparison.

Written from the tutorial's description, with the same runtime objects and the same
preprocessing/postprocessing as axrun, so that only the scheduling differs:

- ``submit_then_wait`` (quickstart): preprocess on the main thread, hand the frame to
  the next worker, wait for its result, then the next frame. One frame in flight.
- ``prefill_drain_main`` (YOLO11 example): preprocess on the main thread; prefill one
  frame per worker, then collect one result and submit one frame, then drain.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from axrun.engine.plan import DeviceSession


class _Worker(threading.Thread):
    """One instance, its own buffers, an input and an output queue (as in the examples)."""

    def __init__(self, instance: Any, session: DeviceSession) -> None:
        super().__init__(daemon=True)
        self.instance = instance
        self.inputs = [np.zeros(i.shape, np.int8) for i in session.input_infos]
        self.outputs = [np.zeros(i.shape, np.int8) for i in session.output_infos]
        self.inq: queue.Queue[Any] = queue.Queue()
        self.outq: queue.Queue[Any] = queue.Queue()

    def run(self) -> None:
        while (job := self.inq.get()) is not None:
            self.instance.run(self.inputs, self.outputs)
            self.outq.put(job)


def _workers(session: DeviceSession) -> list[_Worker]:
    workers = [_Worker(inst, session) for inst in session.instances]
    for w in workers:
        w.start()
    return workers


def _stop(workers: list[_Worker]) -> None:
    for w in workers:
        w.inq.put(None)
    for w in workers:
        w.join()


def submit_then_wait(session: DeviceSession, frames: Iterable[Any],
                     prepare: Callable[[Any, np.ndarray], Any],
                     finish: Callable[[list[np.ndarray], Any], Any]) -> int:
    workers = _workers(session)
    done = 0
    try:
        for i, frame in enumerate(frames):
            w = workers[i % len(workers)]
            meta = prepare(frame, w.inputs[0][0])
            w.inq.put(meta)
            finish(w.outputs, w.outq.get())
            done += 1
    finally:
        _stop(workers)
    return done


def prefill_drain_main(session: DeviceSession, frames: Iterable[Any],
                       prepare: Callable[[Any, np.ndarray], Any],
                       finish: Callable[[list[np.ndarray], Any], Any]) -> int:
    workers = _workers(session)
    n, submitted, collected = len(workers), 0, 0
    it = iter(frames)
    try:
        def submit(frame: Any) -> None:
            nonlocal submitted
            w = workers[submitted % n]
            w.inq.put(prepare(frame, w.inputs[0][0]))
            submitted += 1

        def collect() -> None:
            nonlocal collected
            w = workers[collected % n]
            finish(w.outputs, w.outq.get())
            collected += 1

        for frame in it:  # prefill
            submit(frame)
            if submitted == n:
                break
        for frame in it:  # steady state
            collect()
            submit(frame)
        while collected < submitted:  # drain
            collect()
    finally:
        _stop(workers)
    return collected
