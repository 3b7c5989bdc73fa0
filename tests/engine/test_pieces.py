"""Each thread role of the pipeline alone, with plain callbacks in place of the others:
the reader, the host work and a device worker."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from axrun.engine.host import HostWork
from axrun.engine.jobs import Control, End, Job, Wake
from axrun.engine.reader import InputReader
from axrun.engine.stats import StageTimes
from axrun.engine.worker import DeviceWorker
from axrun.errors import InputError
from axrun.preprocess import Geometry
from axrun.sources import Item

pytestmark = pytest.mark.timeout(30)


def blank_set() -> list[np.ndarray]:
    return [np.zeros((2, 4, 4, 3), np.int8)]


def frame(name: str, value: int = 0) -> Item:
    return Item(name, image=np.full((4, 4, 3), value, np.uint8))


class Reader:
    """An InputReader over ``items`` with counted callbacks."""

    def __init__(self, items, may_wait: bool = False, free_sets: int = 8,
                 batch: int = 2) -> None:
        self.sets: queue.SimpleQueue[list[np.ndarray]] = queue.SimpleQueue()
        for _ in range(free_sets):
            self.sets.put(blank_set())
        self.signals = 0
        self.ends: list[End] = []
        self.control = Control()
        self.reader = InputReader(items, batch, may_wait, self.control, self._free,
                                  self._signal, self.ends.append)

    def _free(self):
        return None if self.sets.empty() else self.sets.get()

    def _signal(self) -> None:
        self.signals += 1


def test_the_reader_numbers_jobs_in_input_order_and_reports_the_end() -> None:
    r = Reader([frame(f"i{i}") for i in range(5)])
    jobs = r.reader.read(woken=True)  # a group: two consecutive jobs
    assert [(j.index, [i.source for i in j.items]) for j in jobs] == [
        (0, ["i0", "i1"]), (1, ["i2", "i3"])]
    assert [j.index for j in r.reader.read(woken=True)] == [2]
    assert r.reader.read(woken=True) == [] and r.ends == [End(3)]
    assert r.reader.read(woken=True) == [] and r.ends == [End(3)]  # once


def test_the_reader_reads_one_batch_at_a_time_from_an_input_that_may_wait() -> None:
    r = Reader([frame(f"i{i}") for i in range(4)], may_wait=True)
    assert [j.index for j in r.reader.read(woken=True)] == [0]


def test_a_thread_finding_the_reader_busy_gets_its_signal_back_later() -> None:
    gate, inside = threading.Event(), threading.Event()

    def slow():
        yield frame("i0")
        inside.set()
        gate.wait(10)  # a pipe with nothing to say for a while
        yield frame("i1")

    r = Reader(slow(), may_wait=True, batch=1)
    got: list[Job] = []
    assert [j.index for j in r.reader.read(woken=True)] == [0]
    reading = threading.Thread(target=lambda: got.extend(r.reader.read(woken=True)))
    reading.start()
    assert inside.wait(5)
    # three wake-ups find the reader busy: nothing to read now, no wait for it
    assert [r.reader.read(woken=True) for _ in range(3)] == [[], [], []]
    assert r.signals == 0
    gate.set()
    reading.join(5)
    assert [j.index for j in got] == [1]
    assert r.signals == 3  # each signal used up while it waited is given back


def test_a_failing_input_ends_it_and_keeps_the_error() -> None:
    def failing():
        yield frame("i0")
        yield frame("i1")
        raise OSError("the pipe broke")

    r = Reader(failing(), may_wait=True)
    assert [j.index for j in r.reader.read(woken=True)] == [0]
    assert r.reader.read(woken=True) == []
    assert r.ends == [End(1)] and isinstance(r.reader.error, OSError)


class DoubleTask:
    """Writes each pixel's value into its slot; the prediction is the output's sum."""

    def preprocess(self, image, slots):
        if image[0, 0, 0] == 99:
            raise InputError("bad frame", "decode")
        slots[0][...] = image.astype(np.int8)
        return Geometry(image.shape[1], image.shape[0], 1.0, 1.0, 0.0, 0.0)

    def postprocess(self, outputs, geometries):
        return [None if g is None else int(outputs[0][slot].sum())
                for slot, g in enumerate(geometries)]


def test_host_work_prepares_a_job_and_postprocesses_it() -> None:
    dispatched: list[list[Job]] = []
    delivered: list[Job] = []
    freed: list[list[np.ndarray]] = []
    host = HostWork(DoubleTask(), 2, Control(), StageTimes(), False, False, dispatched.append,
                    delivered.append, freed.append, lambda: False)
    r = Reader([frame("a", 1), frame("b", 99)], free_sets=0)
    r.reader._free_set = host.free_input_set  # the reader takes the host's free sets
    host.reader = r.reader
    host.input_set_free(blank_set())
    assert host.signals.get_nowait() is Wake.WORK
    assert host.step(woken=True) == 1  # read + prepare + dispatch one job
    (job,) = dispatched[0]
    assert job.errors[0] is None and job.errors[1].kind == "decode"
    assert job.geometries[1] is None and int(job.inputs[0][0].sum()) == 48
    job.outputs = job.inputs  # as a device that copies its input
    host.outputs_back(job)
    assert host.step(woken=True) == 1  # postprocessing comes first
    assert delivered == [job] and job.predictions == [48, None] and freed == [job.inputs]


class CopyInstance:
    """A device instance whose run() returns a copy of the input it was given ``lag``
    calls before (what double buffering does), zeros before that."""

    def __init__(self, lag: int) -> None:
        self.given: list[np.ndarray] = [np.zeros((2, 4, 4, 3), np.int8)] * lag

    def run(self, inputs, outputs) -> None:
        self.given.append(inputs[0].copy())
        outputs[0][...] = self.given.pop(0)


@pytest.mark.parametrize("lag", [0, 2])
def test_a_device_worker_returns_its_jobs_in_order_and_drains_the_lag(lag) -> None:
    back: list[Job] = []
    free: queue.SimpleQueue[list[np.ndarray]] = queue.SimpleQueue()
    for _ in range(4):
        free.put(blank_set())
    worker = DeviceWorker(0, 1, CopyInstance(lag), blank_set(), lag, Control(), StageTimes(),
                          (RuntimeError,), free, back.append, back.append)
    jobs = [Job(i, [frame(f"i{i}")], [np.full((2, 4, 4, 3), i + 1, np.int8)],
                errors=[None]) for i in range(3)]
    worker.submit([jobs[2]])  # out of order: the worker restores it
    worker.submit([jobs[0], jobs[1]])
    worker.submit(End(3))
    worker.thread()
    assert [j.index for j in back] == [0, 1, 2]
    for j in back:  # each job's output set holds its own input's result
        assert j.outputs is not None and (j.outputs[0] == j.index + 1).all()
    assert worker.calls == 3 + lag  # one per job, and the filler calls of the drain
