"""``axrun info`` and ``axrun devices``: inspect a model folder and the devices."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from axrun.cli._common import global_options, handle_errors, print_json, stdout_console
from axrun.errors import AxrunError
from axrun.fidelity import read_fidelity
from axrun.modelfolder import describe, load_model_folder
from axrun.runtime import CORES_PER_DEVICE, load_backend
from axrun.tasks import make_task
from axrun.tasks.base import preprocess_recipe
from axrun.tasks.detect import Detector

JSON_OPTION = typer.Option(
    "--json", help="Print one JSON document (stable keys, see docs/reference.md).")


def _tensor_table(title: str, tensors: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("name", "padded NHWC", "unpadded", "padding", "scale", "zero point", "bytes"):
        table.add_column(col, justify="right" if col in ("bytes", "zero point") else "left")
    for t in tensors:
        table.add_row(
            t["name"], str(tuple(t["shape"])), str(tuple(t["unpadded_shape"])),
            " ".join(f"{lo},{hi}" for lo, hi in t["padding"]),
            f"{t['scale']:.6g}", str(t["zero_point"]), f"{t['bytes']:,}",
        )
    return table


def _print_graph(out: Console, title: str, graph: dict[str, Any]) -> None:
    out.print(title)
    for kind in ("inputs", "outputs"):
        for v in graph[kind]:
            out.print(f"  {kind[:-1]:6} {v['name']} {v['shape']}")


def info(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(
        help="model.json, its folder, a parent of one, or a model's name (axrun models "
        "lists them).")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Show a compiled model's tensors, padding, quantization, postamble and task.

    Examples:

      axrun info yolox-nano-coco
      axrun info build/yolov8s-coco/yolov8s-coco/1/ --json

    --json prints one document with stable keys.
    """
    folder = load_model_folder(model)
    data = describe(folder)
    if folder.task == "detect":  # which decoder the detect command will use, and why
        try:
            # the folder's recipe or the default: the decoder does not depend on it
            detector = make_task(folder, "detect", recipe=preprocess_recipe(folder, "detect"))
            assert isinstance(detector, Detector)
            data["decoder_used"] = {"format": detector.format, "why": detector.format_reason}
        except AxrunError as exc:
            data["decoder_used"] = {"format": None, "why": str(exc)}
    fidelity = read_fidelity(folder.root)
    if fidelity is not None:
        data["fidelity"] = fidelity
    if as_json:
        print_json(data)
        return
    out = stdout_console()
    out.print(f"[bold]{data['model']}[/bold] (manifest version "
              f"{data['manifest_version'] or 'not given'})")
    out.print(
        f"batch {data['batch']} · {data['instances_per_device']} instance(s) per "
        f"{CORES_PER_DEVICE}-core device"
        f" · task {data['task'] or 'not set (no axrun.json)'}"
    )
    out.print(_tensor_table("inputs", data["inputs"]))
    out.print(_tensor_table("outputs", data["outputs"]))
    if data["postamble"]:
        _print_graph(out, f"postamble {data['postamble']['path']}:", data["postamble"])
    else:
        out.print("postamble: none")
    if data["preamble"]:
        _print_graph(out, f"preamble {data['preamble']['path']} (run on the host between "
                     "preprocessing and quantization):", data["preamble"])
    if data["preprocess"]:
        recipe = ", ".join(f"{k}={v}" for k, v in data["preprocess"].items())
        out.print(f"preprocess: {recipe}")
    if data["labels"]:
        out.print(f"labels: {data['labels']['file']} ({data['labels']['count']} classes)")
    if data["decoder"]:
        out.print(f"decoder settings: {data['decoder']}")
    if "decoder_used" in data:
        used = data["decoder_used"]
        out.print(f"decoder: {used['format'] or 'none'} — {used['why']}")
    if fidelity is not None and "float_model" in fidelity:
        out.print(f"fidelity against {fidelity['float_model']} on "
                  f"{fidelity.get('images_from')}: {fidelity.get('summary')} (float "
                  f"preprocessing: {fidelity.get('float_recipe', 'not recorded')})",
                  markup=False)
    elif fidelity is not None:
        out.print(f"fidelity: {fidelity.get('summary')}", markup=False)
    else:
        out.print("fidelity: not measured (axrun check MODEL --float FLOAT.onnx IMAGES... "
                  "--save)")


def devices(
    ctx: typer.Context,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List the devices of the backend in use, with free and used cores."""
    backend = load_backend(global_options(ctx).backend)
    found = backend.list_devices()
    if as_json:
        print_json({
            "backend": backend.name,
            "emulator": backend.settings() or None,
            "devices": [asdict(d) for d in found],
        })
        return
    out = stdout_console()
    out.print(f"backend: [bold]{backend.describe()}[/bold]")
    if not found:
        out.print("no devices found")
        return
    table = Table()
    for col in ("device", "cores", "free", "in use", "held by", "board"):
        table.add_column(col)
    for d in found:
        free = "?" if d.cores_free is None else str(d.cores_free)
        used = "?" if d.cores_free is None else str(d.cores - d.cores_free)
        table.add_row(d.name, str(d.cores), free, used, d.in_use_by or "-", d.board_type)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("info")(handle_errors(info))
    app.command("devices")(handle_errors(devices))
