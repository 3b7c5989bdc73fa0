"""The pipeline: decode pool → one worker thread per instance → results in input order.

Threads and what they own:

- the **dispatcher** reads the input stream, packs batches, takes a free *input set*
  (one padded buffer per model input, whole batch) and submits each frame's
  decode + preprocess to the pool, which writes straight into that set's slot. The
  job then goes to instance ``j % n`` (round-robin).
- the **decode pool** (bounded by the number of input sets) decodes and preprocesses.
- **worker k** waits for its job's frames and calls ``run()`` with a free *output
  set*; when the output it gets back holds a job's result (two calls later with double
  buffering), that output set goes with that job, and the job's postprocessing is
  submitted to the pool. Workers run little Python, so they hardly compete for the
  GIL with decoding.
- the **caller's thread** collects jobs round-robin, which restores input order, waits
  for each job's postprocessing, and returns its input and output sets to the free
  pools. An input set stays with its job until the device has returned that job's
  result, an output set until its results are postprocessed: no buffer is written
  while ``run()`` may still read it, or read while ``run()`` may write it.

Every blocking put/get waits at most :data:`POLL_S` before checking the shared stop
event. The first failure sets it; everything joins; the caller gets the error with
the frame it concerned. At most ``n * (lag + 1 + queue_depth) + 1`` jobs are in
flight, so memory does not grow with the input length.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from axrun.engine.plan import DeviceSession, EngineConfig
from axrun.engine.schedule import DOUBLE_BUFFER_LAG, LagTracker, batches, instance_for
from axrun.engine.stats import StageTimes
from axrun.errors import AxrunError, InputError, PipelineError
from axrun.runtime import translate
from axrun.sources import Item

POLL_S = 0.05
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

    # Optional: ``parallel_postprocess = False`` for postprocessing so cheap that it runs
    # best in the caller's thread (no pool hand-off); by default it runs in the pool.


@dataclass
class FrameResult:
    """One input's outcome: ``result`` from the task, or ``error``; ``meta`` from preprocess."""

    item: Item
    result: Any = None
    error: InputError | None = None
    meta: Any = None
    image: np.ndarray | None = None  # the decoded pixels, when the pipeline keeps them


@dataclass
class _Job:
    index: int
    items: list[Item]
    inputs: list[np.ndarray] | None  # None once returned to the free pool
    futures: list[Future[Any]]
    metas: list[Any] = field(default_factory=list)
    errors: list[InputError | None] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    images: list[np.ndarray | None] = field(default_factory=list)
    outputs: list[np.ndarray] | None = None
    post: Future[list[Any]] | None = None


class _Stopped(Exception):
    """Internal: the stop event was set while waiting."""


_END = object()


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
        self._stop = threading.Event()
        self._graceful = threading.Event()
        self._graceful_at = 0.0
        self._failure: BaseException | None = None
        self._failure_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._inq: list[queue.Queue[Any]] = [
            queue.Queue(maxsize=config.queue_depth) for _ in range(self._workers)
        ]
        # Unbounded hand-offs use the C SimpleQueue: less GIL time per frame. They are
        # bounded all the same, by the fixed number of buffer sets.
        self._outq: list[queue.SimpleQueue[Any]] = [
            queue.SimpleQueue() for _ in range(self._workers)]
        self._free: queue.SimpleQueue[list[np.ndarray]] = queue.SimpleQueue()
        for _ in range(self.max_in_flight):
            self._free.put([
                np.full(i.shape, i.zero_point, np.int8) for i in session.input_infos
            ])
        # One per job in flight, plus the one each worker's current run() writes into.
        self._free_out: queue.SimpleQueue[list[np.ndarray]] = queue.SimpleQueue()
        for _ in range(self.max_in_flight + self._workers):
            self._free_out.put([
                np.full(i.shape, i.zero_point, np.int8) for i in session.output_infos
            ])
        self._pool: ThreadPoolExecutor | None = None
        self._used = False
        self._parallel_post = bool(getattr(task, "parallel_postprocess", True))
        self._device_errors = session.backend.errors

    @property
    def max_in_flight(self) -> int:
        """Jobs (batches) that can be between the input stream and the caller at once."""
        return self._workers * (self._lag + 1 + self.config.queue_depth) + 1

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
        self._stop.set()

    def _get(self, q: queue.Queue[Any] | queue.SimpleQueue[Any]) -> Any:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def _put(self, q: queue.Queue[Any], value: Any) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                q.put(value, timeout=POLL_S)
                return
            except queue.Full:
                continue

    # -- stages ---------------------------------------------------------------------------

    def _prepare(self, item: Item, inputs: list[np.ndarray], slot: int) -> Any:
        """Pool task: decode + preprocess one frame into its slot. InputError is returned."""
        if self._stop.is_set():
            return InputError("stopped", "stopped")
        t0 = time.perf_counter()
        try:
            image = item.load()
            t1 = time.perf_counter()
            self.stats.add("decode", t1 - t0 + item.decode_s)
            meta = self.task.preprocess(image, [buf[slot] for buf in inputs])
        except InputError as exc:
            return exc
        self.stats.add("preprocess", time.perf_counter() - t1)
        return meta, (image if self.keep_images else None)

    def _items(self, items: Iterable[Item]) -> Iterator[Item]:
        for item in items:
            if self._graceful.is_set() or self._stop.is_set():
                return
            yield item

    def _dispatch(self, items: Iterable[Item]) -> None:
        assert self._pool is not None
        try:
            for index, chunk in enumerate(batches(self._items(items), self._batch)):
                inputs = self._get(self._free)
                futures = [self._pool.submit(self._prepare, item, inputs, slot)
                           for slot, item in enumerate(chunk)]
                job = _Job(index, chunk, inputs, futures)
                self._put(self._inq[instance_for(index, self._workers)], job)
            for q in self._inq:
                self._put(q, _END)
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc if isinstance(exc, AxrunError) else PipelineError(
                f"reading inputs failed: {exc!r}"))

    def _await_frames(self, job: _Job) -> None:
        for item, fut in zip(job.items, job.futures, strict=True):
            while True:
                if self._stop.is_set():
                    raise _Stopped
                try:
                    value = fut.result(timeout=POLL_S)
                    break
                except FutureTimeout:
                    continue
                except AxrunError:
                    raise
                except Exception as exc:
                    raise PipelineError(
                        f"{item.source}: preprocessing failed: {exc!r}", item.source
                    ) from exc
            if isinstance(value, InputError):
                job.metas.append(None)
                job.errors.append(value)
                job.images.append(None)
            else:
                job.metas.append(value[0])
                job.errors.append(None)
                job.images.append(value[1])

    def _run(self, instance: Any, inputs: list[np.ndarray], outputs: list[np.ndarray],
             job: _Job | None) -> None:
        t0 = time.perf_counter()
        try:
            instance.run(inputs, outputs)
        except self._device_errors as exc:
            where = f"frame {job.items[0].source}" if job else "a filler frame"
            raise translate(exc, f"run() failed on {where}") from exc
        self.stats.add("device", time.perf_counter() - t0, calls=1)

    def _postprocess(self, job: _Job) -> list[Any]:
        """Pool task: the task's results for a job whose outputs came back."""
        assert job.outputs is not None
        t0 = time.perf_counter()
        metas = [m if e is None else None for m, e in zip(job.metas, job.errors, strict=True)]
        metas += [None] * (self._batch - len(metas))
        results = self.task.postprocess(job.outputs, metas)
        self.stats.add("postprocess", time.perf_counter() - t0)
        return list(results[: len(job.items)])

    def _worker(self, k: int) -> None:
        instance = self.session.instances[k]
        filler = [np.full(i.shape, i.zero_point, np.int8) for i in self.session.input_infos]
        tracker: LagTracker[_Job] = LagTracker(self._lag)
        inq, outq = self._inq[k], self._outq[k]
        assert self._pool is not None
        pool = self._pool

        def skip(job: _Job) -> None:
            # No frame of this job goes to the device: its input set is free at once
            # (held behind a job still in the device, it could starve the dispatcher).
            assert job.inputs is not None
            self._free.put(job.inputs)
            job.inputs = None
            tracker.skip(job)

        def run_and_emit(inputs: list[np.ndarray], job: _Job | None) -> None:
            outputs = self._get(self._free_out)
            self._run(instance, inputs, outputs, job)
            done = tracker.ran()
            if done is None:
                self._free_out.put(outputs)  # nothing useful came back (double buffering)
            else:
                done.outputs = outputs
                if self._parallel_post:
                    done.post = pool.submit(self._postprocess, done)
                outq.put(done)
            for skipped in tracker.ready_skipped():
                skipped.results = [None] * len(skipped.items)
                outq.put(skipped)

        try:
            while (job := self._get(inq)) is not _END:
                self._await_frames(job)
                if all(e is not None for e in job.errors):
                    skip(job)
                    for skipped in tracker.ready_skipped():
                        skipped.results = [None] * len(skipped.items)
                        outq.put(skipped)
                    continue
                tracker.submit(job)
                assert job.inputs is not None
                run_and_emit(job.inputs, job)
            while tracker.in_flight:
                tracker.filler()
                run_and_emit(filler, None)
            outq.put(_END)
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc if isinstance(exc, AxrunError) else PipelineError(
                f"worker {k} failed: {exc!r}"))

    # -- the caller's side ----------------------------------------------------------------

    def _results(self, job: _Job) -> list[Any]:
        """Wait for a job's postprocessing; its failure stops the run, naming the frame.

        After a failure elsewhere, a job whose output already came back still gets
        :data:`SETTLE_S` to finish, so that no completed result is lost.
        """
        if job.outputs is None:
            return job.results  # no frame of it reached the device
        try:
            if job.post is None:
                results = self._postprocess(job)  # cheap: right here, in order
            else:
                while True:
                    failure = self._failure
                    try:
                        results = job.post.result(timeout=SETTLE_S if failure else POLL_S)
                        break
                    except FutureTimeout:
                        if failure is not None:
                            raise failure from None
        except AxrunError as exc:
            self._fail(exc)
            raise
        except Exception as exc:
            source = job.items[0].source
            error = PipelineError(f"{source}: postprocessing failed: {exc!r}", source)
            self._fail(error)
            raise error from exc
        self._free_out.put(job.outputs)
        return results

    def _collect(self, q: queue.SimpleQueue[Any]) -> Any:
        while True:
            if self._failure is not None:
                # Results completed before the failure still reach the caller, in order.
                try:
                    return q.get_nowait()
                except queue.Empty:
                    raise self._failure from None
            if self._graceful.is_set() and time.perf_counter() - self._graceful_at > GRACE_S:
                return _END  # stopping: what is still in flight is abandoned
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def run(self, items: Iterable[Item]) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per item, in input order.

        Raises:
            DeviceError, PipelineError: the first failure, naming the frame; every
                thread has been joined by then.
        """
        if self._used:
            raise RuntimeError("a Pipeline runs once; make a new one")
        self._used = True
        start = time.perf_counter()
        self._pool = ThreadPoolExecutor(self.config.threads, thread_name_prefix="axrun-decode")
        self._threads = [threading.Thread(target=self._dispatch, args=(items,),
                                          name="axrun-dispatch", daemon=True)]
        self._threads += [threading.Thread(target=self._worker, args=(k,),
                                           name=f"axrun-worker-{k}", daemon=True)
                          for k in range(self._workers)]
        for t in self._threads:
            t.start()
        try:
            index = 0
            while (job := self._collect(self._outq[instance_for(index, self._workers)])) \
                    is not _END:
                results = self._results(job)
                if job.inputs is not None:
                    self._free.put(job.inputs)
                for i, item in enumerate(job.items):
                    error = job.errors[i] if i < len(job.errors) else None
                    res = FrameResult(item, results[i] if not error else None, error,
                                      job.metas[i] if i < len(job.metas) else None,
                                      job.images[i] if i < len(job.images) else None)
                    self.stats.frames += 1
                    self.stats.failed += error is not None
                    if self._on_result:
                        self._on_result(res)
                    yield res
                index += 1
        finally:
            self._shutdown()
            self.stats.wall_s += time.perf_counter() - start

    def _shutdown(self) -> None:
        self._stop.set()
        # Abandoning a stop: threads blocked in run() are daemons, do not wait them out.
        budget = 0.3 if self._graceful.is_set() and self._failure is None else JOIN_S
        deadline = time.perf_counter() + budget
        for t in self._threads:
            t.join(max(0.0, deadline - time.perf_counter()))
        if self._pool is not None:
            self._pool.shutdown(wait=budget == JOIN_S, cancel_futures=True)
