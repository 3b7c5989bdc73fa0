"""``axrun bench``: how fast is this setup, and what holds it back.

Three phases share the time budget:

- **device**: one thread per instance calls ``run()`` on the same input, back to back
  (device-only frames/s, latency percentiles per call);
- **host**: decode + preprocess + postprocess with no device, with the engine's threads;
- **system**: the real pipeline over the inputs (cycled) or over synthetic frames.

The verdict compares the three and the system run's stage shares.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from axrun.engine import Engine, StageTimes
from axrun.errors import ParameterError, UsageError
from axrun.modelfolder import network_input_hw
from axrun.sources import Item, ItemStream, expand
from axrun.tasks.base import Task

REPORT_VERSION = 1


@dataclass
class PhaseResult:
    """One phase: frames done in ``seconds``; latency percentiles (ms) for the device."""

    fps: float
    frames: int
    seconds: float
    latency_ms: dict[str, float] | None = None


@dataclass
class BenchReport:
    """Everything ``axrun bench --json`` prints (layout documented in docs/reference.md)."""

    model: str
    task: str
    backend: str
    emulated: bool
    emulator: dict[str, Any] | None
    plan: dict[str, Any]
    inputs: str
    device: PhaseResult
    host: PhaseResult
    system: PhaseResult
    stage_share: dict[str, float]
    limit: str
    verdict: str
    version: int = REPORT_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthetic_items(shape_hw: tuple[int, int], count: int = 8) -> list[Item]:
    """JPEG-encoded random frames of the model's input size (decoded per use)."""
    rng = np.random.default_rng(0)
    items = []
    for _ in range(count):
        noise = cv2.resize(rng.integers(0, 256, (shape_hw[0] // 8 + 1, shape_hw[1] // 8 + 1, 3),
                                        dtype=np.uint8), (shape_hw[1], shape_hw[0]))
        ok, data = cv2.imencode(".jpg", noise)
        assert ok
        items.append(Item("synthetic", data=data.tobytes()))
    return items


def _percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    arr = np.array(samples) * 1000.0
    return {f"p{p}": round(float(np.percentile(arr, p)), 3) for p in (50, 90, 99)}


def device_phase(engine: Engine, seconds: float) -> PhaseResult:
    """``run()`` back to back on every instance, one thread each, same input; timed
    after a warm-up of each instance (double buffering returns its first calls at once)."""
    session = engine.session
    assert session is not None
    deadline = float("inf")  # set once every instance is warm
    calls: list[list[float]] = [[] for _ in session.instances]
    errors: list[BaseException] = []

    warmup = 3 if session.plan.double_buffer else 1  # calls before the steady state

    def spin(k: int) -> None:
        inputs = [np.full(i.shape, i.zero_point, np.int8) for i in session.input_infos]
        outputs = [np.full(i.shape, i.zero_point, np.int8) for i in session.output_infos]
        try:
            with session.backend.translating("bench: run() failed"):
                for _ in range(warmup):
                    session.instances[k].run(inputs, outputs)
                begun.wait()
                while (t0 := time.perf_counter()) < deadline:
                    session.instances[k].run(inputs, outputs)
                    calls[k].append(time.perf_counter() - t0)
        except BaseException as exc:
            errors.append(exc)

    begun = threading.Event()
    threads = [threading.Thread(target=spin, args=(k,), daemon=True)
               for k in range(len(session.instances))]
    for t in threads:
        t.start()
    start = time.perf_counter()
    deadline = start + seconds
    begun.set()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    elapsed = time.perf_counter() - start
    frames = sum(len(c) for c in calls) * session.plan.batch
    return PhaseResult(frames / elapsed, frames, elapsed,
                       _percentiles([x for c in calls for x in c]))


def host_phase(engine: Engine, task: Task, items: Sequence[Item], seconds: float) -> \
        PhaseResult:
    """Decode + preprocess + postprocess (of zero-point outputs), no device."""
    session = engine.session
    assert session is not None
    threads = engine.config.threads
    outputs = [np.full(i.shape, i.zero_point, np.int8) for i in session.output_infos]
    deadline = time.perf_counter() + seconds
    counter = itertools.count()
    done = [0] * threads

    def work(k: int) -> None:
        buf = [np.full(i.shape, i.zero_point, np.int8) for i in session.input_infos]
        while time.perf_counter() < deadline:
            item = items[next(counter) % len(items)]
            try:
                meta = task.preprocess(item.load(), [b[0] for b in buf])
            except Exception:
                continue
            task.postprocess(outputs, [meta] + [None] * (session.plan.batch - 1))
            done[k] += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    elapsed = time.perf_counter() - start
    return PhaseResult(sum(done) / elapsed, sum(done), elapsed)


def system_phase(engine: Engine, task: Task, items: Sequence[Item], seconds: float) -> \
        tuple[PhaseResult, StageTimes]:
    """The real pipeline over ``items``, cycled, stopped at the deadline. Frames/s are
    counted from the first result on (the steady state, not the pipeline's fill time)."""
    stats = StageTimes()
    pipeline = engine.pipeline(task, stats)
    deadline = time.perf_counter() + seconds
    first = last = 0.0
    frames = 0
    for _ in pipeline.run(ItemStream(itertools.cycle(items), may_wait=False)):
        last = time.perf_counter()
        if frames == 0:
            first = last
        frames += 1
        if last >= deadline:
            pipeline.request_stop()
    elapsed = last - first
    fps = (frames - 1) / elapsed if frames > 1 and elapsed > 0 else 0.0
    return PhaseResult(fps, frames, elapsed), stats


def verdict(device: float, host: float, system: float, shares: dict[str, float],
            double_buffer: bool, emulated: bool, cores_used: int = 4,
            all_devices: bool = True) -> tuple[str, str]:
    """What limits the run (``device``, ``decode``, ``preprocess``, ``postprocess`` or
    ``pipeline``) and one line saying so, with what to try (only what is not already in
    effect: ``cores_used`` per device, ``all_devices`` in use)."""
    ceiling = min(device, host)
    host_stages = {k: shares.get(k, 0.0) for k in ("decode", "preprocess", "postprocess")}
    busiest = max(host_stages, key=lambda k: host_stages[k])
    efficiency = system / ceiling if ceiling else 0.0
    if efficiency < 0.75:
        return "pipeline", (
            f"the pipeline reaches {efficiency:.0%} of its ceiling ({ceiling:,.0f} frames/s): "
            "try more --decode-threads, or fewer instances (--aipu-cores) if the host has few "
            "cores")
    if device <= host:
        if not double_buffer:
            tip = "double buffering is off: try --double-buffer"
        elif cores_used < 4:
            tip = "use every core: --aipu-cores 4"
        elif not all_devices:
            tip = "use every device: --devices all"
        else:
            tip = "this is what the device(s) can do; more devices would add throughput"
        note = " (emulated device: set AXRUN_EMULATOR_LATENCY_MS to model real hardware)" \
            if emulated else ""
        return "device", (f"the device limits the run ({device:,.0f} frames/s device-only, "
                          f"host could do {host:,.0f}){note}: {tip}")
    tips = {
        "decode": "decoding dominates: more --decode-threads, smaller or "
                  "faster-to-decode inputs (e.g. JPEG over PNG), faster storage",
        "preprocess": "preprocessing dominates: more --decode-threads; inputs closer to the "
                      "model's size resize faster",
        "postprocess": "postprocessing dominates: a higher --conf or fewer --classes "
                       "(detection), a smaller --top-k (classification)",
    }
    return busiest, (f"the host limits the run ({host:,.0f} frames/s host-only vs "
                     f"{device:,.0f} device-only); {tips[busiest]}")


def benchmark(engine: Engine, task: Task, task_name: str, inputs: Sequence[str],
              seconds: float) -> BenchReport:
    """Run the three phases on an opened engine; ``seconds`` is the total budget."""
    if seconds <= 0:
        raise ParameterError("seconds", f"must be positive, not {seconds}")
    session = engine.session
    assert session is not None
    if inputs:
        items = [i for i in itertools.islice(expand(inputs), 256) if i.error is None]
        if not items:
            raise UsageError("no readable inputs to benchmark on")
        described = f"{len(items)} input(s) from {', '.join(inputs)}"
    else:
        hw = network_input_hw(engine.folder)
        items = synthetic_items((hw[0], hw[1]))
        described = f"synthetic {hw[1]}x{hw[0]} JPEG frames"
    third = seconds / 3
    device = device_phase(engine, third)
    host = host_phase(engine, task, items, third)
    system, stats = system_phase(engine, task, items, third)
    shares = {k: round(v, 4) for k, v in stats.shares().items()}
    emulated = engine.backend.emulated
    plan = engine.plan
    limit, text = verdict(device.fps, host.fps, system.fps, shares, plan.double_buffer,
                          emulated, plan.cores_per_device, engine.config.devices is None)
    return BenchReport(
        model=str(engine.folder.root), task=task_name, backend=engine.backend.name,
        emulated=emulated, emulator=engine.backend.settings() or None,
        plan=engine.plan.as_dict(), inputs=described, device=device, host=host,
        system=system, stage_share=shares, limit=limit, verdict=text,
    )
