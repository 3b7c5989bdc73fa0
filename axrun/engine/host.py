"""Host work: decode + preprocess into input sets, and postprocess what comes back.

The host threads (and the caller's thread, while it waits) share one work queue with
one :attr:`Wake.WORK` signal per piece of work: a job whose outputs came back (done
first), or a free input set to read the next batch into. A thread that does several
pieces for one signal takes the signals of the others (:meth:`HostWork.used`), so
that signals stay as many as the pieces of work there are.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

import numpy as np

from axrun.engine.jobs import POLL_S, Control, Job, Stopped, Wake, take, wrapped
from axrun.engine.reader import InputReader
from axrun.engine.stats import StageTimes
from axrun.errors import AxrunError, InputError, PipelineError
from axrun.images import ScaleFor
from axrun.preprocess import resize_factor
from axrun.results import Prediction
from axrun.tasks.base import Task

SETTLE_S = 1.0  # after a failure, how long a job whose output is back may still finish


class HostWork:
    """The host side of one run.

    ``dispatch`` hands a group of prepared jobs to their instance; ``deliver`` hands a
    postprocessed job to the caller; ``free_outputs`` takes back an output set;
    ``workers_alive`` says whether a device worker may still hand over outputs.
    :attr:`reader` is set before any thread starts.
    """

    def __init__(self, task: Task, batch: int, control: Control, stats: StageTimes,
                 keep_images: bool, reduce: bool, dispatch: Callable[[list[Job]], None],
                 deliver: Callable[[Job], None],
                 free_outputs: Callable[[list[np.ndarray]], None],
                 workers_alive: Callable[[], bool]) -> None:
        self.task, self.batch, self.control, self.stats = task, batch, control, stats
        self.keep_images = keep_images
        # How far a JPEG may be decoded reduced: as far as the preprocessing shrinks it.
        # Kept images (annotated copies) are decoded again at full size, so that the
        # records are the same with or without them.
        self.scale_for: ScaleFor | None = None
        if reduce:
            writer = task.preprocessor
            self.scale_for = lambda h, w: resize_factor(writer.recipe, writer.size_hw, (h, w))
        self._dispatch, self._deliver, self._free_outputs = dispatch, deliver, free_outputs
        self._workers_alive = workers_alive
        self.reader: InputReader | None = None
        self.signals: queue.SimpleQueue[Wake] = queue.SimpleQueue()
        self._post: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._free_inputs: queue.SimpleQueue[list[np.ndarray]] = queue.SimpleQueue()

    # -- hand-offs in -----------------------------------------------------------------

    def signal(self) -> None:
        self.signals.put(Wake.WORK)

    def input_set_free(self, inputs: list[np.ndarray]) -> None:
        """An input set is free: a host thread reads the next batch into it."""
        self._free_inputs.put(inputs)
        self.signal()

    def free_input_set(self) -> list[np.ndarray] | None:
        """A free input set, if there is one now (for the reader)."""
        return take(self._free_inputs)

    def outputs_back(self, job: Job) -> None:
        """The device has filled ``job.outputs``: a host thread postprocesses it."""
        self._post.put(job)
        self.signal()

    # -- the work ---------------------------------------------------------------------

    def thread(self) -> None:
        """A host thread: one :meth:`step` per signal, until :attr:`Wake.QUIT`."""
        try:
            while self.control.get(self.signals) is Wake.WORK:
                self.used(self.step(woken=True) - 1)  # one signal woke it up
        except Stopped:
            if self.control.failure is not None:
                self.settle()
        except BaseException as exc:
            self.control.fail(wrapped(exc, "a host thread failed"))
            self.settle()

    def step(self, woken: bool) -> int:
        """Postprocess a job whose outputs came back, else read, decode and preprocess
        the next batch (or group) and dispatch it. Returns the pieces of work done
        (jobs postprocessed or free sets used): 0, there was nothing to do.
        ``woken``: a signal brought the thread here (not so for the caller's thread)."""
        if (job := take(self._post)) is not None:
            self.finish(job)
            return 1
        assert self.reader is not None
        if not (jobs := self.reader.read(woken)):
            return 0
        for job in jobs:
            self.prepare(job)
        self._dispatch(jobs)
        return len(jobs)

    def used(self, count: int) -> None:
        """Take the signals of ``count`` pieces of work done without waiting for them."""
        for _ in range(count):
            if take(self.signals) is None:
                return

    def prepare(self, job: Job) -> None:
        """Decode + preprocess each frame of a job into its slot of the job's input set.
        A bad frame gets an InputError; anything else stops the run, naming the frame."""
        decode_s = preprocess_s = 0.0
        for slot, item in enumerate(job.items):
            t0 = time.perf_counter()
            try:
                image, original = item.load_for(self.scale_for)
                kept = None
                if self.keep_images:
                    kept = image if original is None else item.load_for(None)[0]
                t1 = time.perf_counter()
                decode_s += t1 - t0 + item.decode_s
                geometry = self.task.preprocess(image, [buf[slot] for buf in job.inputs])
                if original is not None:  # decoded reduced: map to the original's pixels
                    geometry = geometry.of_original(*original)
                preprocess_s += time.perf_counter() - t1
            except InputError as exc:
                job.geometries.append(None)
                job.errors.append(exc)
                job.images.append(None)
                continue
            except AxrunError:
                raise
            except Exception as exc:
                raise PipelineError(
                    f"{item.source}: preprocessing failed: {exc!r}", item.source) from exc
            job.geometries.append(geometry)
            job.errors.append(None)
            job.images.append(kept)
        self.stats.add("decode", decode_s)
        self.stats.add("preprocess", preprocess_s)

    def finish(self, job: Job) -> None:
        """Postprocess a job whose outputs came back, free its output set, deliver it."""
        assert job.outputs is not None
        outputs, job.outputs = job.outputs, None
        job.predictions = self._postprocess(job, outputs)
        self._free_outputs(outputs)
        self._deliver(job)

    def _postprocess(self, job: Job, outputs: list[np.ndarray]) -> list[Prediction | None]:
        """The task's predictions for a job; a failure names the frame."""
        t0 = time.perf_counter()
        geometries = job.geometries
        if len(geometries) < self.batch:  # a partial last batch: None, no frame there
            geometries = geometries + [None] * (self.batch - len(geometries))
        source = job.items[0].source
        try:
            predictions = self.task.postprocess(outputs, geometries)
        except AxrunError:
            raise
        except Exception as exc:
            raise PipelineError(f"{source}: postprocessing failed: {exc!r}", source) from exc
        self.stats.add("postprocess", time.perf_counter() - t0)
        if len(predictions) < len(job.items):
            raise PipelineError(f"{source}: postprocessing returned {len(predictions)} "
                                f"results for {len(job.items)} frames", source)
        return list(predictions[: len(job.items)])

    def settle(self) -> None:
        """After a failure, postprocess the outputs already back (within
        :data:`SETTLE_S`): no result the device completed is lost to a failure
        elsewhere. Ends early once no worker is left and nothing is."""
        deadline = time.perf_counter() + SETTLE_S
        workers_gone = False
        while time.perf_counter() < deadline:
            try:
                job = self._post.get(timeout=POLL_S)
            except queue.Empty:
                if workers_gone:
                    return  # and nothing they handed over is left
                # Once no worker is left, nothing more can come: one more look, then done.
                workers_gone = not self._workers_alive()
                continue
            try:
                self.finish(job)
            except BaseException:
                return  # the first failure is the one reported
