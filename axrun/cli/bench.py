"""``axrun bench``: device, host and system throughput, and what limits them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from axrun.bench import benchmark
from axrun.cli import shared as common
from axrun.cli._common import global_options, handle_errors, stdout_console
from axrun.engine import Engine, EngineConfig, parse_devices
from axrun.engine.process import tune_process
from axrun.modelfolder import load_model_folder
from axrun.tasks import make_task, task_from_outputs, task_name
from axrun.tasks.base import preprocess_recipe


def bench(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(
        help="Model folder (or its model.json), or a model's name (axrun models lists "
        "them).")],
    inputs: Annotated[list[str] | None, typer.Argument(
        help="Images, folders or a video to run on (default: synthetic frames of the "
        "model's input size).", show_default=False)] = None,
    task: Annotated[str | None, typer.Option(
        "--task", help="classify or detect (default: what the folder's axrun.json or "
        "model_info.json says, else what its outputs' shapes fit).",
        show_default=False)] = None,
    seconds: Annotated[float, typer.Option(
        "--seconds", help="Total measuring time, split over the three phases.")] = 10.0,
    aipu_cores: common.CoresOpt = 4,
    devices: common.DevicesOpt = "all",
    double_buffer: common.DoubleBufferOpt = True,
    decode_threads: common.ThreadsOpt = None,
    device_config: common.DeviceConfigOpt = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON document (layout in docs/reference.md).")] = False,
) -> None:
    """Measure device-only, host-only and end-to-end frames/s, and say what limits them.

    Examples:

      axrun bench efficientnet-lite0-imagenet
      axrun bench yolox-nano-coco clip.mp4 --aipu-cores 4

    With no card the emulator stands in for the device (its figures are the emulator's).
    """
    folder = load_model_folder(model)
    # the host figures include the task's postprocessing: the right one, or an error
    name = task_name(folder, task or folder.task or task_from_outputs(folder))
    # normalization does not change the figures: the default recipe, never an error
    built = make_task(folder, name, recipe=preprocess_recipe(folder, name))
    config = EngineConfig(aipu_cores=aipu_cores, devices=parse_devices(devices),
                          double_buffer=double_buffer, decode_threads=decode_threads,
                          device_config=common.parse_device_config(device_config))
    tune_process()
    with Engine(folder, backend=global_options(ctx).backend, config=config) as engine:
        report = benchmark(engine, built, name, inputs or [], seconds)
        plan_text = engine.plan.describe()
        backend_text = engine.backend.describe()
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    out = stdout_console()
    lat = report.device.latency_ms or {}
    emulated = f" (emulated device: {backend_text})" if report.emulated else ""
    out.print(f"[bold]{report.model}[/bold] ({report.task}) — {backend_text}")
    out.print(f"plan: {plan_text}")
    out.print(f"inputs: {report.inputs}")
    out.print(f"device  {report.device.fps:10,.1f} frames/s   run() latency "
              + " ".join(f"{k} {v:.2f} ms" for k, v in lat.items()) + emulated)
    out.print(f"host    {report.host.fps:10,.1f} frames/s   decode + preprocess + "
              f"postprocess, {config.threads} thread(s), no device")
    out.print(f"system  {report.system.fps:10,.1f} frames/s   end to end")
    out.print("time per stage: " + " · ".join(f"{k} {v:.0%}"
                                               for k, v in report.stage_share.items()))
    out.print(f"[bold]verdict[/bold] ({report.limit}): {report.verdict}")


def register(app: typer.Typer) -> None:
    app.command("bench")(handle_errors(bench))
