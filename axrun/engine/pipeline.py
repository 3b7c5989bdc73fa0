"""The pipeline: host threads → one worker thread per instance → results in input order.

Threads and what they own:

- the **host threads** (``EngineConfig.threads``, default one per CPU) do all the
  host work. For each signal on their work queue they postprocess a job whose outputs
  came back, if there is one; else they take a free *input set* (one padded buffer
  per model input, whole batch), read the next batch of the input into it (one
  thread at a time, so jobs are numbered in input order), decode and preprocess its
  frames straight into the set (OpenCV releases the GIL) and hand the job to its
  instance: ``j // GROUP % n``. Consecutive jobs of the same instance are read,
  prepared and handed over together, as free sets allow (not from an input that may
  wait): one worker wake-up per group. A thread finding another one reading (maybe
  waiting on a slow pipe) does not wait for it: it goes back to its other work.
- **worker k** runs its jobs in job order and calls ``run()`` with a free *output
  set*; when the output it gets back holds a job's result (two calls later with
  double buffering), it hands that job and output set to the host threads. When no
  job comes for :data:`IDLE_S`, or a job's frames all failed, a filler call pushes
  out the results still in the device. Workers run little Python: they mostly wait
  for the device.
- the **caller's thread** yields results in input order and returns each job's input
  set to the host threads. While its next result is not there, it is one of the host
  threads (one fewer is started) and does their work, unless the input may wait on
  the outside world (see :meth:`Pipeline.run`): it must never wait there while results
  are ready. An input set stays with its job until the device has returned that job's
  result, an output set until its results are postprocessed: no buffer is written
  while ``run()`` may still read it, or read while ``run()`` may write it.

When the host is the limit, host threads (the caller among them) are always busy, so
handing them work wakes nobody; a group of frames wakes its worker, once. Hand-offs are C
``SimpleQueue``s. Every blocking wait lasts at most :data:`POLL_S` before checking
the shared stop event. The first failure sets it; outputs already back are still
postprocessed (:data:`SETTLE_S`); everything joins; the caller gets the error with
the frame it concerned. At most :attr:`Pipeline.max_in_flight` jobs hold buffers, so
memory does not grow with the input length.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from axrun.engine.plan import DeviceSession, EngineConfig
from axrun.engine.schedule import (
    DOUBLE_BUFFER_LAG,
    GROUP,
    LagTracker,
    batches,
    instance_for,
    jobs_of,
)
from axrun.engine.stats import StageTimes
from axrun.errors import AxrunError, InputError, PipelineError
from axrun.runtime import translate
from axrun.sources import Item

POLL_S = 0.05
IDLE_S = 0.1  # a worker with no new job for this long pushes its results out (fillers)
JOIN_S = 5.0
GRACE_S = 1.5  # after request_stop(), in-flight frames get this long, then are abandoned
SETTLE_S = 1.0  # after a failure, how long a job whose output is back may still finish


class Task(Protocol):
    """What the engine needs from a task (classify, detect, raw outputs...)."""

    def preprocess(self, image: np.ndarray, slots: list[np.ndarray]) -> Any:
        """Write one BGR image into its batch slot of each input; return its metadata."""
        ...

    def postprocess(self, outputs: list[np.ndarray], metas: list[Any | None]) -> list[Any]:
        """Results for each batch slot (``metas[i]`` None: no frame there) from the
        padded int8 outputs. Must not keep references to ``outputs``."""
        ...


@dataclass
class FrameResult:
    """One input's outcome: ``result`` from the task, or ``error``; ``meta`` from preprocess."""

    item: Item
    result: Any = None
    error: InputError | None = None
    meta: Any = None
    image: np.ndarray | None = None  # the decoded pixels, when the pipeline keeps them


@dataclass(slots=True)
class _Job:
    index: int
    items: list[Item]
    inputs: list[np.ndarray]  # held until the job is delivered
    metas: list[Any] = field(default_factory=list)
    errors: list[InputError | None] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    images: list[np.ndarray | None] = field(default_factory=list)
    outputs: list[np.ndarray] | None = None  # set while a host thread postprocesses it


class _Stopped(Exception):
    """Internal: the stop event was set while waiting."""


_WORK = object()  # a signal to the host threads: there is work (or maybe there is)


def _take(q: queue.SimpleQueue[Any] | queue.Queue[Any]) -> Any:
    """An item of ``q`` if there is one now, else None (an exception is slower, and
    having nothing is the usual case)."""
    if q.empty():
        return None
    try:
        return q.get_nowait()
    except queue.Empty:  # another thread took it first
        return None


def _frame_name(item: Item) -> str:
    """An input as messages name it: ``a.jpg``, or ``clip.mp4 frame 120``."""
    return item.source if item.frame is None else f"{item.source} frame {item.frame}"


def _wrapped(exc: BaseException, what: str) -> BaseException:
    """axrun's own errors as they are; anything else as a PipelineError caused by it."""
    if isinstance(exc, AxrunError):
        return exc
    error = PipelineError(f"{what}: {exc!r}")
    error.__cause__ = exc
    return error


class Pipeline:
    """Runs items through an opened :class:`DeviceSession` with a :class:`Task`.

    Use :meth:`run` once. :meth:`request_stop` (from any thread, e.g. a signal
    handler) stops taking new input; frames already in flight still complete.
    ``keep_images`` returns each frame's decoded pixels with its result (for
    annotation); memory stays bounded by the frames in flight.
    """

    def __init__(
        self,
        session: DeviceSession,
        task: Task,
        config: EngineConfig,
        stats: StageTimes | None = None,
        on_result: Callable[[FrameResult], None] | None = None,
        keep_images: bool = False,
    ) -> None:
        self.session = session
        self.keep_images = keep_images
        self.task = task
        self.config = config
        self.stats = stats or StageTimes()
        self._on_result = on_result
        self._workers = len(session.instances)
        self._lag = DOUBLE_BUFFER_LAG if session.plan.double_buffer else 0
        self._batch = session.plan.batch
        self._device_errors = session.backend.errors
        self._stop = threading.Event()
        self._graceful = threading.Event()
        self._graceful_at = 0.0
        self._failure: BaseException | None = None
        self._failed_at = 0.0
        self._failure_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Hand-offs are C SimpleQueues (less GIL time per frame than queue.Queue), bounded
        # all the same by the fixed number of buffer sets. Jobs may arrive out of order;
        # each reader restores the order; an int is the end: the number of jobs.
        # Host threads wait on _work, one signal per piece of work: a job to postprocess
        # (in _post, done first) or a free input set to read into (in _parked).
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._post: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._parked: queue.SimpleQueue[list[np.ndarray]] = queue.SimpleQueue()
        self._inq: list[queue.SimpleQueue[Any]] = [
            queue.SimpleQueue() for _ in range(self._workers)]
        # For the caller: a queue.Queue, whose timed wait is a lock's. The caller's
        # thread is the one that runs signal handlers, and on CPython 3.11 a handler
        # that outlasts the rest of a SimpleQueue.get(timeout=...) turns it into a
        # wait without end (a negative timeout): Ctrl-C then hung the run.
        self._done: queue.Queue[Any] = queue.Queue()
        for _ in range(self.max_in_flight):
            self._free_inputs([np.full(i.shape, i.zero_point, np.int8)
                               for i in session.input_infos])
        # One per job in flight, plus the one each worker's current run() writes into.
        self._free_out: queue.SimpleQueue[list[np.ndarray]] = queue.SimpleQueue()
        for _ in range(self.max_in_flight + self._workers):
            self._free_out.put([np.full(i.shape, i.zero_point, np.int8)
                                for i in session.output_infos])
        self._batches: Generator[list[Item], None, None] = batches((), 1)  # set by run()
        self._reading = threading.Lock()  # held by the one thread reading the input
        self._reader: threading.Thread | None = None  # that thread, while inside next()
        # One token per signal used up by a thread that found the reading lock taken:
        # the reader gives each back when it is done (see _read_next).
        self._missed_reads: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._read = 0  # batches read so far
        self._delivered = 0  # jobs whose results the caller has had
        self._exhausted = False
        self._input_error: BaseException | None = None
        self._caller_helps = False  # set by run()
        self._input_may_wait = True  # set by run()
        self._used = False

    @property
    def max_in_flight(self) -> int:
        """Jobs (batches) that can be between the input stream and the caller at once:
        per instance, those in the device, a group being collected and ``queue_depth``
        decoded ahead; plus a group for each host thread. (A job is delivered only once
        its instance has run ``lag`` more: its instance's next group, ``n`` groups on,
        must fit too, or the pipeline would wait for :data:`IDLE_S` fillers.)"""
        return (self._workers * (self._lag + GROUP + self.config.queue_depth)
                + self.config.threads * GROUP)

    def request_stop(self) -> None:
        """Stop taking new input; frames in flight complete and are returned, unless
        that takes longer than :data:`GRACE_S` — then they are abandoned."""
        if not self._graceful.is_set():
            self._graceful_at = time.perf_counter()
            self._graceful.set()

    # -- waiting with a stop check --------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        with self._failure_lock:
            if self._failure is None:
                self._failure = exc
                self._failed_at = time.perf_counter()
        self._stop.set()

    def _get(self, q: queue.SimpleQueue[Any]) -> Any:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue

    # -- host threads: read + decode + preprocess, and postprocess ------------------------

    def _free_inputs(self, inputs: list[np.ndarray]) -> None:
        """An input set is free: a host thread reads the next batch into it."""
        self._parked.put(inputs)
        self._work.put(_WORK)

    def _to_postprocess(self, job: _Job) -> None:
        self._post.put(job)
        self._work.put(_WORK)

    def _host(self) -> None:
        """A host thread: for each signal, one :meth:`_host_step`."""
        try:
            while self._get(self._work) is not None:
                self._tokens_used(self._host_step(woken=True) - 1)  # one woke it up
        except _Stopped:
            if self._failure is not None:
                self._settle()
        except BaseException as exc:
            self._fail(_wrapped(exc, "a host thread failed"))
            self._settle()

    def _host_step(self, woken: bool) -> int:
        """Postprocess a job whose outputs came back, else read, decode and preprocess
        the next batch (or group) and hand it to its instance. Returns the pieces of
        work done (jobs postprocessed or free sets used): 0, there was nothing to do.
        ``woken``: a signal brought the thread here (not so for the caller's thread)."""
        if (job := _take(self._post)) is not None:
            self._finish(job)
            return 1
        if not (jobs := self._read_next(woken)):
            return 0
        for job in jobs:
            self._prepare(job)
        self._inq[instance_for(jobs[0].index, self._workers, GROUP)].put(jobs)
        return len(jobs)

    def _tokens_used(self, count: int) -> None:
        """Take the signals of ``count`` pieces of work done without waiting for them,
        so that signals stay as many as the pieces of work there are (not one more for
        every piece the caller's thread or a group did)."""
        for _ in range(count):
            if _take(self._work) is None:
                return

    def _read_next(self, woken: bool) -> list[_Job]:
        """The next batch of the input, in a free input set, and the batches after it
        that go to the same instance (up to its group of :data:`GROUP`, as free sets
        allow), unless the input may wait; none if there is nothing to read now.

        Only if no other thread is reading (it may be waiting for a slow input, such as
        a pipe): else this thread goes back to its other work, so that decoding and
        postprocessing never wait for input. The signal that brought it here stands
        for work still to do, so the reader gives it back after releasing the reading
        lock: every signal used up this way, however many (a thread may find the lock
        taken many times during one slow read), or free sets would wait with no signal
        and the pipeline would run on workers' idle fillers.
        """
        jobs: list[_Job] = []
        if not self._reading.acquire(blocking=False):
            if woken:  # leave a token for the reader, then look once more: it may be done
                self._missed_reads.put(_WORK)
            if not self._reading.acquire(blocking=False):
                return jobs
        try:
            while job := self._read_one():
                jobs.append(job)
                if self._input_may_wait or (job.index + 1) % GROUP == 0:
                    break
            if self._stop.is_set():
                self._close_input()  # the run has ended while this thread was reading
        finally:
            self._reading.release()
        # Tokens left before this release (or before a later holder's) are given back
        # by this thread (or that holder): none is forgotten.
        while _take(self._missed_reads) is not None:
            self._work.put(_WORK)
        return jobs

    def _read_one(self) -> _Job | None:
        """With the reading lock: the next batch, numbered in input order, in a free
        input set. At the end of the input (or on a stop request, or if reading
        fails), tell the workers and the caller how many jobs there were."""
        if self._exhausted or self._stop.is_set():
            return None
        if (inputs := _take(self._parked)) is None:
            return None
        chunk = None
        if not self._graceful.is_set():
            self._reader = threading.current_thread()
            try:
                chunk = next(self._batches, None)
            except Exception as exc:  # the input stream itself failed: end it there
                self._input_error = exc
            finally:
                self._reader = None
        if self._stop.is_set():
            return None  # the run ended while waiting for input: what came is not used
        if chunk is None:
            self._exhausted = True
            for q in self._inq:
                q.put(self._read)
            self._done.put(self._read)
            return None
        self._read += 1
        return _Job(self._read - 1, chunk, inputs)

    def _close_input(self) -> None:
        """With the reading lock: close the input stream if it can be (a video being
        read is released)."""
        self._batches.close()

    def _prepare(self, job: _Job) -> None:
        """Decode + preprocess each frame of a job into its slot of the job's input set.
        A bad frame gets an InputError; anything else stops the run, naming the frame."""
        decode_s = preprocess_s = 0.0
        for slot, item in enumerate(job.items):
            t0 = time.perf_counter()
            try:
                image = item.load()
                t1 = time.perf_counter()
                decode_s += t1 - t0 + item.decode_s
                meta = self.task.preprocess(image, [buf[slot] for buf in job.inputs])
                preprocess_s += time.perf_counter() - t1
            except InputError as exc:
                job.metas.append(None)
                job.errors.append(exc)
                job.images.append(None)
                continue
            except AxrunError:
                raise
            except Exception as exc:
                raise PipelineError(
                    f"{item.source}: preprocessing failed: {exc!r}", item.source) from exc
            job.metas.append(meta)
            job.errors.append(None)
            job.images.append(image if self.keep_images else None)
        self.stats.add("decode", decode_s)
        self.stats.add("preprocess", preprocess_s)

    def _finish(self, job: _Job) -> None:
        """Postprocess a job whose outputs came back, free its output set, deliver it."""
        assert job.outputs is not None
        outputs, job.outputs = job.outputs, None
        job.results = self._postprocess(job, outputs)
        self._free_out.put(outputs)
        self._done.put(job)

    def _postprocess(self, job: _Job, outputs: list[np.ndarray]) -> list[Any]:
        """The task's results for a job whose outputs came back; a failure names the frame."""
        t0 = time.perf_counter()
        metas = job.metas
        if len(metas) < self._batch:  # a partial last batch: None, no frame there
            metas = metas + [None] * (self._batch - len(metas))
        try:
            results = self.task.postprocess(outputs, metas)
        except AxrunError:
            raise
        except Exception as exc:
            source = job.items[0].source
            raise PipelineError(f"{source}: postprocessing failed: {exc!r}", source) from exc
        self.stats.add("postprocess", time.perf_counter() - t0)
        if len(results) < len(job.items):
            source = job.items[0].source
            raise PipelineError(f"{source}: postprocessing returned {len(results)} results "
                                f"for {len(job.items)} frames", source)
        return list(results[: len(job.items)])

    def _settle(self) -> None:
        """After a stop, postprocess the outputs already back (within :data:`SETTLE_S`):
        no result the device completed is lost to a failure elsewhere."""
        deadline = time.perf_counter() + SETTLE_S
        workers_gone = False
        while time.perf_counter() < deadline:
            try:
                job = self._post.get(timeout=POLL_S)
            except queue.Empty:
                if workers_gone:
                    return  # and nothing they handed over is left
                # Once no worker is left, nothing more can come: one more look, then done.
                workers_gone = not any(t.is_alive() for t in self._threads[: self._workers])
                continue
            try:
                self._finish(job)
            except BaseException:
                return  # the first failure is the one reported

    # -- workers: one per instance, the only threads that call run() ----------------------

    def _in_order(self, receive: Callable[[], Any],
                  order: Iterator[int]) -> Iterator[_Job | None]:
        """The jobs numbered by ``order``, in that order, from ``receive()``, which gives
        them in any order (alone or in lists), or the number of jobs (the end; -1: end
        now), or None (nothing came for a while: None is yielded)."""
        ready: dict[int, _Job] = {}
        expected, total = next(order), None
        while total is None or expected < total:
            if expected in ready:
                yield ready.pop(expected)
                expected = next(order)
                continue
            got = receive()
            if got is None:
                yield None
            elif isinstance(got, int):
                total = got if got >= 0 else expected
            elif isinstance(got, list):
                for job in got:
                    ready[job.index] = job
            else:
                ready[got.index] = got

    def _jobs_for(self, k: int) -> Iterator[_Job | None]:
        """Worker ``k``'s jobs (see :func:`jobs_of`) in order, as decoding finishes them;
        None each time no job came for :data:`IDLE_S`."""
        q = self._inq[k]

        def receive() -> Any:
            if self._stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=IDLE_S)
            except queue.Empty:
                return None

        return self._in_order(receive, jobs_of(k, self._workers, GROUP))

    def _run(self, instance: Any, inputs: list[np.ndarray], outputs: list[np.ndarray],
             job: _Job | None) -> None:
        t0 = time.perf_counter()
        try:
            instance.run(inputs, outputs)
        except self._device_errors as exc:
            where = _frame_name(job.items[0]) if job else "a filler frame"
            raise translate(exc, f"run() failed on {where}") from exc
        self.stats.add("device", time.perf_counter() - t0, calls=1)

    def _worker(self, k: int) -> None:
        instance = self.session.instances[k]
        filler = [np.full(i.shape, i.zero_point, np.int8) for i in self.session.input_infos]
        tracker: LagTracker[_Job] = LagTracker(self._lag)
        done_q = self._done

        def release_skipped() -> None:
            for skipped in tracker.ready_skipped():
                skipped.results = [None] * len(skipped.items)
                done_q.put(skipped)

        def run_and_emit(inputs: list[np.ndarray], job: _Job | None) -> None:
            outputs = self._get(self._free_out)
            self._run(instance, inputs, outputs, job)
            done = tracker.ran()
            if done is None:
                self._free_out.put(outputs)  # nothing useful came back (double buffering)
            else:
                done.outputs = outputs
                self._to_postprocess(done)
            release_skipped()

        try:
            for job in self._jobs_for(k):
                if job is None or None not in job.errors:
                    if job is not None:
                        tracker.skip(job)  # no frame of it goes to the device
                    # The input stalls, or frames fail: a filler call pushes out the
                    # results still in the device (double buffering), so that they
                    # are not held back, nor the failed jobs behind them (which hold
                    # input sets: without this, they could starve the input).
                    if tracker.in_flight:
                        tracker.filler()
                        run_and_emit(filler, None)
                    else:
                        release_skipped()
                    continue
                tracker.submit(job)
                run_and_emit(job.inputs, job)
            while tracker.in_flight:
                tracker.filler()
                run_and_emit(filler, None)
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(_wrapped(exc, f"worker {k} failed"))

    # -- the caller's side ----------------------------------------------------------------

    def _collect(self) -> Any:
        """The next finished job (any order) or the job count; after a failure, what
        finishes within :data:`SETTLE_S`, then the failure."""
        while True:
            failure = self._failure
            if failure is not None:
                # Wait while a thread may still deliver something (and for SETTLE_S at
                # most); after the last one ended, look once more.
                busy = any(t.is_alive() for t in self._busy_threads())
                try:
                    return self._done.get(timeout=POLL_S)
                except queue.Empty:
                    if busy and time.perf_counter() - self._failed_at < SETTLE_S:
                        continue
                    raise failure from None
            if self._graceful.is_set() and (
                    time.perf_counter() - self._graceful_at > GRACE_S
                    or (self._reader is not None and self._delivered == self._read)):
                # Stopping: what has finished is delivered, what has not is abandoned
                # (at once when every job read was delivered and a thread waits inside
                # the input: nothing else can come).
                done = _take(self._done)
                return -1 if done is None else done
            if self._caller_helps:  # do host work until the next job is there
                if (done := _take(self._done)) is not None:
                    return done
                try:
                    if work := self._host_step(woken=False):
                        self._tokens_used(work)
                        continue
                except Exception as exc:  # as in a host thread; KeyboardInterrupt goes up
                    self._fail(_wrapped(exc, "host work in the caller's thread failed"))
                    continue
            try:
                return self._done.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def _busy_threads(self) -> list[threading.Thread]:
        """The pipeline's threads, except one waiting inside the input stream (a pipe
        may never deliver): nothing the caller waits for can come from that one."""
        reader = self._reader
        return [t for t in self._threads if t is not reader]

    def run(self, items: Iterable[Item]) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per item, in input order.

        While it waits for the next result, the caller's thread does host work, also
        reading ``items``, if it can never wait long there: when ``items`` is a
        sequence, or says so (a ``may_wait`` attribute that is false, as the streams of
        :func:`axrun.sources.expand` without stdin or a named pipe have). Else (a pipe,
        a camera) only the host threads read it, one batch at a time, so that results
        are never held up by input that has not come yet.

        Raises:
            DeviceError, PipelineError: the first failure, naming the frame; every
                thread has been joined by then.
        """
        if self._used:
            raise RuntimeError("a Pipeline runs once; make a new one")
        self._used = True
        start = time.perf_counter()
        self._input_may_wait = getattr(items, "may_wait", not isinstance(items, Sequence))
        self._caller_helps = self.config.threads > 1 and not self._input_may_wait
        self._batches = batches(items, self._batch)
        self._threads = [threading.Thread(target=self._worker, args=(k,),
                                          name=f"axrun-worker-{k}", daemon=True)
                         for k in range(self._workers)]
        self._threads += [threading.Thread(target=self._host, name=f"axrun-host-{i}",
                                           daemon=True) for i in range(self._host_threads)]
        for t in self._threads:
            t.start()
        try:
            for job in self._in_order(self._collect, itertools.count()):
                assert job is not None  # _collect waits: it never gives None
                self._delivered += 1
                self._free_inputs(job.inputs)
                for item, result, error, meta, image in zip(
                        job.items, job.results, job.errors, job.metas, job.images,
                        strict=True):
                    res = FrameResult(item, None if error else result, error, meta, image)
                    self.stats.frames += 1
                    self.stats.failed += error is not None
                    if self._on_result:
                        self._on_result(res)
                    yield res
            if self._input_error is not None:  # everything read before it was delivered
                raise _wrapped(self._input_error, "reading inputs failed")
        finally:
            self._shutdown()
            self.stats.wall_s += time.perf_counter() - start

    @property
    def _host_threads(self) -> int:
        """Host threads to start: the caller's thread, when it helps, is one of them.
        At least two for an input that may wait: one of them may wait inside it, and
        the results already back must not wait with it."""
        if self._input_may_wait:
            return max(2, self.config.threads)
        return self.config.threads - self._caller_helps

    def _shutdown(self) -> None:
        for _ in range(self._host_threads):
            self._work.put(None)  # host threads end at once (after the signals before)
        self._stop.set()
        # Abandoning a stop: threads blocked in run() are daemons, do not wait them out;
        # nor one blocked inside the input stream.
        budget = 0.3 if self._graceful.is_set() and self._failure is None else JOIN_S
        deadline = time.perf_counter() + budget
        for t in self._busy_threads():
            t.join(max(0.0, deadline - time.perf_counter()))
        # Close the input stream where possible (a video's read-ahead thread ends with
        # it); not while a thread is inside it.
        if self._reading.acquire(blocking=False):  # else the reader closes it on return
            try:
                self._close_input()
            finally:
                self._reading.release()
