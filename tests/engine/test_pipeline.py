"""The engine end to end on the emulator: order, correctness, batching, faults, memory."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator

import numpy as np
import pytest
from modelgen import reference_outputs
from polling import wait_until
from reference import reference_input

from axrun import emulator as axr
from axrun.engine import Engine, EngineConfig, StageTimes
from axrun.engine.schedule import GROUP, jobs_of
from axrun.errors import DeviceBusy, DeviceError, PipelineError, UsageError
from axrun.modelfolder import load_model_folder
from axrun.preprocess import PreprocessRecipe
from axrun.sources import Item, ItemStream
from axrun.tasks.raw import RawTask

RECIPE = PreprocessRecipe(mode="stretch", color="rgb", mean=(127, 127, 127),
                          std=(128, 128, 128))
pytestmark = pytest.mark.timeout(60)


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (12 + i % 5, 9 + i % 7, 3), dtype=np.uint8) for i in range(n)]


def items_of(imgs: list[np.ndarray]) -> list[Item]:
    return [Item(f"img{i}", image=im) for i, im in enumerate(imgs)]


def expected_for(gen, image: np.ndarray) -> list[np.ndarray]:
    folder = load_model_folder(gen.path)
    spec_in = folder.manifest.inputs[0]
    x = reference_input(image, RECIPE, spec_in)[None].repeat(spec_in.shape[0], 0)
    out = reference_outputs(gen, spec_in, folder.manifest.outputs, x)
    return [o[0] for o in out]


def zeros(name: str) -> Item:
    return Item(name, image=np.zeros((8, 8, 3), np.uint8))


def counted(pulled: itertools.count) -> Iterator[Item]:
    """Blank frames without end; ``next(pulled)`` tells how many were read."""
    for i in itertools.count():
        next(pulled)
        yield zeros(f"i{i}")


def may_wait(items: Iterable[Item]) -> ItemStream:
    """``items`` as an input that says it may wait on the outside world (like stdin)."""
    return ItemStream(items, may_wait=True)


def one_then_quiet(gate: threading.Event) -> ItemStream:
    """One blank frame, then an input that goes quiet until ``gate`` opens (20 s)."""

    def items() -> Iterator[Item]:
        yield zeros("i0")
        gate.wait(20)

    return may_wait(items())


def no_axrun_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("axrun-")]


def assert_matches(gen, imgs, results) -> None:
    assert [r.item.source for r in results] == [f"img{i}" for i in range(len(imgs))]
    for r, im in zip(results, imgs, strict=True):
        assert r.error is None
        for got, ref in zip(r.prediction, expected_for(gen, im), strict=True):
            assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1, r.item.source


@pytest.mark.parametrize("double_buffer", [True, False], ids=["db", "no-db"])
@pytest.mark.parametrize(("batch", "count"), [(1, 13), (2, 7), (4, 9), (4, 3)])
def test_every_result_matches_its_own_input_under_slow_run(
    tiny, monkeypatch, batch, count, double_buffer
) -> None:
    """run() is slow (inputs read at its end), frames arrive out of step: any buffer
    reuse while a run() may still read it would show up as a wrong result."""
    monkeypatch.setenv("AXRUN_EMULATOR_LATENCY_MS", "3")
    gen = tiny(kind="classifier", batch=batch, size=8)
    imgs = images(count)
    with Engine(gen.path, backend="emulator",
                config=EngineConfig(double_buffer=double_buffer, decode_threads=3)) as engine:
        assert len(engine.plan.instances) == 4 // batch
        results = list(engine.run(RawTask(engine.folder, RECIPE), items_of(imgs)))
    assert_matches(gen, imgs, results)
    assert no_axrun_threads()


def test_double_buffering_on_and_off_give_identical_results(tiny) -> None:
    gen = tiny(kind="twohead", batch=2, size=8, spatial=(1, 1, 1, 15))
    imgs = images(11, seed=5)
    runs = []
    for db in (True, False):
        with Engine(gen.path, config=EngineConfig(double_buffer=db)) as engine:
            runs.append(list(engine.run(RawTask(engine.folder, RECIPE), items_of(imgs))))
    for a, b in zip(*runs, strict=True):
        for x, y in zip(a.prediction, b.prediction, strict=True):
            np.testing.assert_array_equal(x, y)


def test_several_devices_and_aipu_cores(tiny, monkeypatch) -> None:
    monkeypatch.setenv("AXRUN_EMULATOR_DEVICES", "2")
    gen = tiny(kind="classifier", batch=1, size=8)
    with Engine(gen.path, config=EngineConfig(aipu_cores=3)) as engine:
        assert engine.plan.instances == ("metis-0:1:0",) * 3 + ("metis-0:2:0",) * 3
        imgs = images(10)
        assert_matches(gen, imgs, list(engine.run(RawTask(engine.folder, RECIPE),
                                                  items_of(imgs))))
    with Engine(gen.path, config=EngineConfig(devices=("metis-0:2:0",))) as engine:
        assert engine.plan.devices == ("metis-0:2:0",) and len(engine.plan.instances) == 4
    with pytest.raises(UsageError, match="batch size 4 needs 4 cores"):
        Engine(tiny(kind="classifier", batch=4, size=8).path,
               config=EngineConfig(aipu_cores=2)).open()


def test_bad_frames_get_errors_and_the_run_goes_on(tiny, tmp_path) -> None:
    gen = tiny(kind="classifier", batch=2, size=8)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    imgs = images(4)
    items = [Item("img0", image=imgs[0]), Item(str(bad)), Item(str(tmp_path / "gone.png")),
             Item(str(bad)), Item("img1", image=imgs[1])]
    with Engine(gen.path) as engine:
        results = list(engine.run(RawTask(engine.folder, RECIPE), items))
    assert [r.error.kind if r.error else None for r in results] == [
        None, "decode", "not_found", "decode", None]
    assert results[0].prediction is not None and results[4].prediction is not None


class ExplodingTask(RawTask):
    def __init__(self, folder, where: str, at: int) -> None:
        super().__init__(folder, RECIPE)
        self.where, self.at, self.count = where, at, itertools.count()

    def preprocess(self, image, slots):
        if self.where == "pre" and next(self.count) == self.at:
            raise RuntimeError("boom in preprocess")
        return super().preprocess(image, slots)

    def postprocess(self, outputs, metas):
        if self.where == "post" and next(self.count) == self.at:
            raise ValueError("boom in postprocess")
        return super().postprocess(outputs, metas)


@pytest.mark.parametrize(("where", "message"), [("pre", "preprocessing failed"),
                                                ("post", "postprocessing failed")])
def test_unexpected_failure_stops_fast_and_names_the_frame(tiny, where, message) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    engine = Engine(gen.path).open()
    endless = (Item(f"img{i}", image=np.zeros((8, 8, 3), np.uint8)) for i in itertools.count())
    start = time.perf_counter()
    with pytest.raises(PipelineError, match=message) as info:
        for _ in engine.run(ExplodingTask(engine.folder, where, 5), endless):
            pass
    assert time.perf_counter() - start < 5
    assert info.value.source and info.value.source.startswith("img")
    assert no_axrun_threads()
    engine.close()
    with axr.Context() as ctx:
        assert ctx.list_devices()[0].cores_free == 4


class FailingInstance:
    def __init__(self, inner, after: int) -> None:
        self.inner, self.after, self.calls = inner, after, 0

    def run(self, inputs, outputs):
        self.calls += 1
        if self.calls > self.after:
            raise axr.InternalError("DMA timeout")
        return self.inner.run(inputs, outputs)


def test_run_failure_reaches_caller_with_frame_and_done_frames_are_kept(tiny) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    done = []
    with Engine(gen.path, config=EngineConfig(double_buffer=False)) as engine:
        engine.session.instances[2] = FailingInstance(engine.session.instances[2], after=3)
        # worker 2 runs three of its jobs, then fails on the fourth
        fails_on = list(itertools.islice(jobs_of(2, 4, GROUP), 4))[-1]
        with pytest.raises(DeviceError, match=rf"run\(\) failed on img{fails_on}: DMA"):
            for r in engine.run(RawTask(engine.folder, RECIPE), items_of(images(40))):
                done.append(r.item.source)
    assert done == [f"img{i}" for i in range(len(done))] and len(done) <= fails_on
    assert no_axrun_threads()


def test_keyboard_interrupt_joins_threads_and_releases(tiny) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    endless = (Item(f"i{i}", image=np.zeros((8, 8, 3), np.uint8)) for i in itertools.count())
    with pytest.raises(KeyboardInterrupt), Engine(gen.path) as engine:
        for n, _ in enumerate(engine.run(RawTask(engine.folder, RECIPE), endless)):
            if n == 20:
                raise KeyboardInterrupt
    assert no_axrun_threads()
    with axr.Context() as ctx:
        assert ctx.list_devices()[0].cores_free == 4


def test_in_flight_frames_are_bounded(tiny) -> None:
    gen = tiny(kind="classifier", batch=2, size=8)
    pulled = itertools.count()
    with Engine(gen.path) as engine:
        pipeline = engine.pipeline(RawTask(engine.folder, RECIPE))
        bound = pipeline.max_in_flight * 2
        for n, _ in enumerate(pipeline.run(counted(pulled))):
            time.sleep(0.002)  # a slow consumer
            if n == 300:
                break
        # an item is read only into a free buffer: consumed + in flight (+ this call)
        assert next(pulled) <= 301 + bound + 1


def test_request_stop_finishes_in_flight_frames(tiny) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    endless = (Item(f"i{i}", image=np.zeros((8, 8, 3), np.uint8)) for i in itertools.count())
    stats = StageTimes()
    with Engine(gen.path) as engine:
        pipeline = engine.pipeline(RawTask(engine.folder, RECIPE), stats)
        out = []
        for r in pipeline.run(endless):
            out.append(r)
            if len(out) == 10:
                pipeline.request_stop()
    assert len(out) >= 10 and [r.item.source for r in out] == [f"i{i}" for i in range(len(out))]
    assert all(r.prediction is not None for r in out)
    assert stats.frames == len(out) and stats.seconds["device"] > 0


def test_cores_held_elsewhere_give_device_busy(tiny) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    with axr.Context() as other:
        other.device_connect(None, num_sub_devices=2)
        with pytest.raises(DeviceBusy, match="held by pid"):
            Engine(gen.path).open()
    with axr.Context() as ctx:
        assert ctx.list_devices()[0].cores_free == 4


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cores", [1, 4])
def test_many_failed_frames_behind_a_good_one_do_not_starve_the_pipeline(tiny, tmp_path,
                                                                         cores) -> None:
    """A job whose frames all failed must not keep its buffers while an earlier job is
    still in the (double-buffered) device: with more of them than buffer sets, that
    used to deadlock."""
    gen = tiny(kind="classifier", batch=1, size=8)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with Engine(gen.path, config=EngineConfig(aipu_cores=cores)) as engine:
        pipeline = engine.pipeline(RawTask(engine.folder, RECIPE))
        items = [Item("good", image=np.zeros((8, 8, 3), np.uint8))]
        items += [Item(str(bad))] * (3 * pipeline.max_in_flight)
        results = list(pipeline.run(items))
    assert len(results) == len(items) and results[0].error is None
    assert all(r.error is not None for r in results[1:])


def test_every_result_completed_before_a_run_failure_is_delivered(tiny) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    with Engine(gen.path, config=EngineConfig(aipu_cores=1, double_buffer=False)) as engine:
        engine.session.instances[0] = FailingInstance(engine.session.instances[0], after=5)
        done = []
        with pytest.raises(DeviceError, match="run\\(\\) failed on img5"):
            for r in engine.run(RawTask(engine.folder, RECIPE), items_of(images(20))):
                done.append(r.item.source)
    assert done == [f"img{i}" for i in range(5)]


@pytest.mark.timeout(30)
def test_a_stop_abandons_frames_stuck_in_the_device(tiny, monkeypatch) -> None:
    monkeypatch.setenv("AXRUN_EMULATOR_LATENCY_MS", "2500")
    gen = tiny(kind="classifier", batch=1, size=8)
    endless = (Item(f"i{i}", image=np.zeros((8, 8, 3), np.uint8)) for i in itertools.count())
    with Engine(gen.path) as engine:
        pipeline = engine.pipeline(RawTask(engine.folder, RECIPE))
        threading.Timer(0.2, pipeline.request_stop).start()
        t0 = time.perf_counter()
        results = list(pipeline.run(endless))
        assert time.perf_counter() - t0 < 2.5
    assert [r.item.source for r in results] == [f"i{i}" for i in range(len(results))]
    deadline = time.monotonic() + 10  # the abandoned run() calls end on their own
    while not no_axrun_threads() and time.monotonic() < deadline:
        time.sleep(0.05)


class Img3ExplodingTask(RawTask):
    """Postprocessing that fails on img3 alone, the only one of ``images(20)`` that is
    12 pixels wide and 15 high."""

    def postprocess(self, outputs, metas):
        if any(m is not None and (m.width, m.height) == (12, 15) for m in metas):
            raise ValueError("boom in postprocess")
        return super().postprocess(outputs, metas)


class SlowPreprocess(RawTask):
    """Host work that takes a while (the GIL released, as in OpenCV): the host is the
    limit, and host threads are never idle."""

    def preprocess(self, image, slots):
        time.sleep(0.001)
        return super().preprocess(image, slots)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_work_signals_do_not_pile_up_in_a_long_run(tiny, threads) -> None:
    # One signal per piece of work: one left over per frame would grow without bound
    # over a long run (they are only used up when the host goes idle).
    gen = tiny(kind="classifier", batch=1, size=8)
    config = EngineConfig(decode_threads=threads)
    with Engine(gen.path, config=config) as engine:
        pipeline = engine.pipeline(SlowPreprocess(engine.folder, RECIPE))
        pending = [pipeline.host.signals.qsize()
                   for n, _ in enumerate(pipeline.run(items_of(images(1500)))) if n % 100 == 99]
    assert max(pending) <= pipeline.max_in_flight + threads, pending


def test_postprocess_failure_names_exactly_the_frame(tiny) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    done = []
    with Engine(gen.path) as engine, pytest.raises(PipelineError,
                                                   match="img3: postprocessing failed"):
        for r in engine.run(Img3ExplodingTask(engine.folder, RECIPE), items_of(images(20))):
            done.append(r.item.source)
    assert done == [f"img{i}" for i in range(len(done))] and len(done) <= 3
    assert no_axrun_threads()


@pytest.mark.timeout(30)
def test_a_stop_still_delivers_every_finished_frame_to_a_slow_consumer(tiny) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    pulled = itertools.count()
    with Engine(gen.path) as engine:
        pipeline = engine.pipeline(RawTask(engine.folder, RECIPE))
        out = []
        for r in pipeline.run(counted(pulled)):
            out.append(r.item.source)
            if len(out) == 3:
                pipeline.request_stop()
            time.sleep(0.1)  # slower than the stop's grace period in total
    read = next(pulled)
    assert out == [f"i{i}" for i in range(read)]  # every frame read was delivered


def test_a_failure_with_one_host_thread_still_delivers_what_the_device_returned(
        tiny, monkeypatch) -> None:
    """One instance: frame 5 fails while frame 0 is in run() (100 ms), and frame 1 was
    handed over with it. Their outputs come back after the failure, and the only host
    thread, the one that failed, still postprocesses and delivers them."""
    monkeypatch.setenv("AXRUN_EMULATOR_LATENCY_MS", "100")
    gen = tiny(kind="classifier", batch=1, size=8)
    done = []
    config = EngineConfig(decode_threads=1, aipu_cores=1, double_buffer=False)
    with Engine(gen.path, config=config) as engine, pytest.raises(
            PipelineError, match="img5: preprocessing failed"):
        for r in engine.run(ExplodingTask(engine.folder, "pre", 5), items_of(images(20))):
            done.append(r.item.source)
    assert done == ["img0", "img1"]
    assert no_axrun_threads()


@pytest.mark.timeout(30)
def test_results_are_not_held_back_by_a_stalled_input(tiny) -> None:
    """Double buffering holds each instance's last two results until the next run();
    when the input stalls, filler runs push them out."""
    gen = tiny(kind="classifier", batch=1, size=8)
    resumed = threading.Event()
    waited = []

    def stream():
        for i in range(6):
            yield zeros(f"i{i}")
        waited.append(resumed.wait(5))  # a pipe with nothing to say for a while
        yield zeros("i6")

    with Engine(gen.path) as engine:
        got = []
        for r in engine.run(RawTask(engine.folder, RECIPE), may_wait(stream())):
            got.append((r.item.source, resumed.is_set()))
            if len(got) == 6:
                resumed.set()
    assert got == [(f"i{i}", False) for i in range(6)] + [("i6", True)]
    assert waited == [True]  # the six results came while the input was stalled
    assert no_axrun_threads()


def test_a_failing_input_stream_delivers_what_was_read_then_raises(tiny) -> None:
    gen = tiny(kind="classifier", batch=2, size=8)

    def stream():
        for i in range(7):
            yield zeros(f"i{i}")
        raise OSError("disk gone")

    out = []
    with Engine(gen.path) as engine, pytest.raises(PipelineError,
                                                   match="reading inputs failed") as info:
        for r in engine.run(RawTask(engine.folder, RECIPE), stream()):
            out.append(r.item.source)
    assert out == [f"i{i}" for i in range(7)]
    assert isinstance(info.value.__cause__, OSError)
    assert no_axrun_threads()


@pytest.mark.timeout(30)
def test_failed_frames_behind_a_good_one_do_not_hold_its_result(tiny, tmp_path) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    pulled = itertools.count()

    def stream():
        yield zeros("good")
        for _ in range(5000):
            next(pulled)
            yield Item(str(bad))

    with Engine(gen.path, config=EngineConfig(aipu_cores=1)) as engine:
        pipeline = engine.pipeline(RawTask(engine.folder, RECIPE))
        first = next(pipeline.run(stream()))
        assert first.item.source == "good" and first.error is None
        assert next(pulled) <= 2 * pipeline.max_in_flight  # not the whole stream


def test_stopping_early_closes_a_video_being_read(tiny, tmp_path) -> None:
    import cv2

    from axrun.sources import expand

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    for i in range(100):
        writer.write(np.full((24, 32, 3), i, np.uint8))
    writer.release()
    gen = tiny(kind="classifier", batch=1, size=8)
    with Engine(gen.path) as engine:
        pipeline = engine.pipeline(RawTask(engine.folder, RECIPE))
        for n, _ in enumerate(pipeline.run(expand([str(video)]))):
            if n == 3:
                break
        assert wait_until(no_axrun_threads)  # the pipeline is still referenced here


@pytest.mark.timeout(30)
def test_one_host_thread_with_a_slow_input_still_delivers_as_it_goes(tiny) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)

    def trickle():
        for i in range(12):
            time.sleep(0.1)  # e.g. paths arriving on a pipe
            yield zeros(f"i{i}")

    config = EngineConfig(decode_threads=1, double_buffer=False)
    with Engine(gen.path, config=config) as engine:
        t0 = time.perf_counter()
        first = next(engine.run(RawTask(engine.folder, RECIPE), may_wait(trickle())))
        # not after every free buffer was filled from the slow input (1.3 s and more)
        assert first.item.source == "i0" and time.perf_counter() - t0 < 0.8


@pytest.mark.timeout(30)
def test_an_input_that_waits_for_each_result_gets_it_at_once(tiny) -> None:
    # A request/response client: the next path comes only after the last result. The
    # caller's thread, which helps with host work, must not wait inside such an input.
    gen = tiny(kind="classifier", batch=1, size=8)
    answered = [threading.Event() for _ in range(4)]

    def client():
        for i in range(4):
            yield zeros(f"i{i}")
            if not answered[i].wait(5):
                return

    config = EngineConfig(decode_threads=2, double_buffer=False)
    with Engine(gen.path, config=config) as engine:
        t0, got = time.perf_counter(), []
        for r in engine.run(RawTask(engine.folder, RECIPE), may_wait(client())):
            answered[len(got)].set()
            got.append(r.item.source)
        assert got == ["i0", "i1", "i2", "i3"]
        assert time.perf_counter() - t0 < 2  # not 5 s of waiting per answer


@pytest.mark.timeout(30)
def test_a_run_that_ends_during_a_slow_read_stops_reading_and_closes_the_input(tiny) -> None:
    gen = tiny(kind="classifier", batch=1, size=8)
    gate, pulled, closed = threading.Event(), itertools.count(), threading.Event()

    def stream():
        try:
            for i in itertools.count():
                if i == 3:
                    gate.wait(10)  # the input goes quiet
                next(pulled)
                yield zeros(f"i{i}")
        finally:
            closed.set()

    with Engine(gen.path, config=EngineConfig(double_buffer=False)) as engine:
        pipeline = engine.pipeline(RawTask(engine.folder, RECIPE))
        for n, _ in enumerate(pipeline.run(may_wait(stream()))):
            if n == 1:
                break
        gate.set()  # the input speaks again, after the run has ended
        assert closed.wait(3)  # the thread that was reading closed it
        assert next(pulled) <= 4  # and read nothing more
        assert wait_until(no_axrun_threads)


def test_process_settings_change_only_when_asked_for(tiny) -> None:
    import cv2

    from axrun import tune_process

    gen = tiny(kind="classifier", batch=1, size=8)
    cv2.setNumThreads(2)
    try:
        with Engine(gen.path) as engine:
            list(engine.run(RawTask(engine.folder, RECIPE), items_of(images(3))))
            assert cv2.getNumThreads() == 2  # the host program's setting is left alone
        tune_process()
        assert cv2.getNumThreads() == 1  # the host threads are the parallelism
    finally:
        cv2.setNumThreads(1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_decoding_in_the_callers_thread_reuses_freed_frame_memory(tiny, monkeypatch) -> None:
    # The caller's (main) thread decodes too; without the allocator settings, glibc
    # gave its frames' memory back and faulted it in again: ~30 page faults a frame.
    import resource
    from pathlib import Path

    from axrun import tune_process

    for key in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(key, raising=False)
    tune_process()  # what the command line does
    photos = sorted((Path(__file__).parents[2] / "models" / "samples").glob("*.jpg"))
    items = [Item(str(photos[i % len(photos)])) for i in range(240)]
    gen = tiny(kind="classifier", batch=1, size=8)
    config = EngineConfig(decode_threads=2, double_buffer=False)
    with Engine(gen.path, config=config) as engine:
        task = RawTask(engine.folder, RECIPE)
        assert len(list(engine.run(task, items))) == 240  # warm-up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        assert len(list(engine.run(task, items))) == 240
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults / 240 < 15, faults


@pytest.mark.timeout(60)
def test_an_input_that_may_wait_runs_without_idle_fillers_when_it_does_not(tiny) -> None:
    # stdin paths (an input that says it may wait): host threads read it one
    # batch at a time, and a thread finding another one reading gives up its signal.
    # Every such signal must come back: free buffers left without one stalled the run
    # (workers idled, then pushed results out with filler calls: 8 frames/s from stdin).
    gen = tiny(kind="classifier", batch=1, size=8)
    frames, instances = 300, 4

    def paths_from_a_pipe():
        for i in range(frames):
            time.sleep(0.0005)  # a little work per path, the GIL released (a stat())
            yield zeros(f"i{i}")

    with Engine(gen.path, config=EngineConfig(decode_threads=2)) as engine:
        pipeline = engine.pipeline(RawTask(engine.folder, RECIPE))
        got = list(pipeline.run(may_wait(paths_from_a_pipe())))
    assert len(got) == frames
    # One call per frame, the double-buffer drain at the end (2 per instance), and at
    # most a few idle pushes when the machine was busy elsewhere.
    calls = sum(worker.calls for worker in pipeline.workers)
    assert calls <= frames + 2 * instances + 6, calls


@pytest.mark.timeout(30)
def test_a_slow_signal_handler_does_not_turn_the_callers_wait_into_a_hang(tiny) -> None:
    # CPython 3.11: a handler that outlasts the rest of SimpleQueue.get(timeout=...)
    # makes that wait endless. The caller's thread runs the CLI's handler (which prints,
    # slowly under load): Ctrl-C hung the run in about 1 of 3 tries on a loaded machine.
    gen = tiny(kind="classifier", batch=1, size=8)
    gate = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda *_: time.sleep(0.3))
    try:
        with Engine(gen.path) as engine:
            pipeline = engine.pipeline(RawTask(engine.folder, RECIPE))
            results = pipeline.run(one_then_quiet(gate))
            assert next(results).item.source == "i0"
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            threading.Timer(0.8, pipeline.request_stop).start()
            t0 = time.monotonic()
            assert list(results) == []  # the stop ends the run: the wait has an end
            assert time.monotonic() - t0 < 5
    finally:
        gate.set()
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.timeout(30)
def test_one_host_thread_waiting_inside_the_input_holds_no_result_back(tiny) -> None:
    # --decode-threads 1 with paths from a pipe: the one host thread waits for the next
    # path; the result of the last one must still come out (a second host thread
    # postprocesses it).
    gen = tiny(kind="classifier", batch=1, size=8)
    gate = threading.Event()
    with Engine(gen.path, config=EngineConfig(decode_threads=1)) as engine:
        t0 = time.monotonic()
        results = engine.run(RawTask(engine.folder, RECIPE), one_then_quiet(gate))
        try:
            assert next(results).item.source == "i0"
            assert time.monotonic() - t0 < 5  # not when the input speaks again (20 s)
        finally:
            gate.set()
            results.close()
