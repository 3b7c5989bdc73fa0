"""``axrun check``: does an INT8 model still agree with its float model on these images,
and where does it lose precision?"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from axrun.cli._common import (
    configure_logging,
    global_options,
    handle_errors,
    print_json,
    stderr_console,
)
from axrun.cli.compile import choose_recipe, metadata_recipe
from axrun.compiler.sensitivity import LayerReport
from axrun.errors import EXIT_INPUT_FAILED, EXIT_OUTPUT, InputError, OutputError, UsageError
from axrun.fidelity import (
    FIDELITY_FILE,
    FOLDER_RECIPE,
    Comparison,
    check_model,
    disagreement_text,
    layer_report,
    qdq_graph,
)
from axrun.modelfolder import load_model_folder, package_models_dir
from axrun.preprocess import PreprocessRecipe
from axrun.sources import Item, expand, is_video

MIN_AGREEMENT = 0.9


def float_recipe(model: Path, preset: str | None, preprocess: str | None) -> \
        tuple[PreprocessRecipe | None, str]:
    """The float model's preprocessing and where it came from: ``--preset`` and
    ``--preprocess``, else its ONNX metadata, else None (the INT8 folder's)."""
    if preset is None and preprocess is None:
        recipe = metadata_recipe(model)  # a recipe there that cannot be read: an error
        if recipe is None:
            return None, FOLDER_RECIPE
    return choose_recipe(model, preset, preprocess)


def check_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(
        help="The INT8 model: a folder, its model.json, or a model's name (axrun models).")],
    images: Annotated[list[str], typer.Argument(
        help="Images, folders of images, globs or list files (videos are not compared).",
        show_default=False)],
    float_model: Annotated[Path | None, typer.Option(
        "--float", metavar="FLOAT.onnx",
        help="The float ONNX model the INT8 one was compiled from.")] = None,
    min_agreement: Annotated[float, typer.Option(
        "--min-agreement", min=0.0, max=1.0,
        help="Exit 1 below this agreement: top-1 agreement (classify) or box F1 "
        "(detect), 0-1.")] = MIN_AGREEMENT,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON document: the figures, every disagreement and "
        "failure, and the per-layer ranking.")] = False,
    save: Annotated[bool, typer.Option(
        "--save", help=f"Store the figures in the model folder ({FIDELITY_FILE}), where "
        "axrun info shows them.")] = False,
    per_layer: Annotated[bool, typer.Option(
        "--per-layer", help="Rank the 8-bit activations by what their rounding costs "
        "(needs a folder axrun compile wrote; no --float needed).")] = False,
    layer_images: Annotated[int, typer.Option(
        "--layer-images", min=1, metavar="N",
        help="Images the per-layer ranking runs on: it runs the model once per activation "
        "and image (YOLOX-Nano, 4 images: about a minute).")] = 4,
    top: Annotated[int, typer.Option(
        "--top", min=1, metavar="N", help="Activations to show in the per-layer ranking.")] = 10,
    preset: Annotated[str | None, typer.Option(
        "--preset", metavar="NAME", help="The float model's preprocessing, as for axrun "
        "compile (default: its axrun.preprocess metadata, else the INT8 folder's, and then "
        "a wrong recipe in the folder goes unseen).")] = None,
    preprocess: Annotated[str | None, typer.Option(
        "--preprocess", metavar="K=V,...",
        help="The float model's preprocessing as key=value pairs (see axrun compile "
        "--help); over --preset.")] = None,
    conf: Annotated[float | None, typer.Option(
        "--conf", help="Detect: confidence threshold for both models (default 0.25).")] = None,
    iou: Annotated[float | None, typer.Option(
        "--iou", help="Detect: NMS IoU threshold for both models (default 0.45).")] = None,
    quiet: Annotated[bool, typer.Option(
        "-q", "--quiet", help="Only the summary (and errors).")] = False,
) -> None:
    """Compare an INT8 model with its float model on your images: the same
    preprocessing and decoding on both sides, only the quantization differs.

    classify: top-1 agreement, top-5 agreement (the float top-1 among INT8's top 5)
    and the mean absolute difference of the float top-1's probability. detect: float
    and INT8 boxes matched by class at IoU >= 0.5; recall, precision, mean IoU and
    their F1. Each image where they differ is listed.

    Examples:

      axrun check yolox-nano-coco --float yolox-nano.onnx photos/

      axrun check my-effnet --float effnet.onnx val/ --min-agreement 0.95 --json

      axrun check my-yolox photos/ --per-layer

    Exit status: 0 agreement at or above --min-agreement, 1 below it, an image could
    not be read or nothing was compared, 2 usage error, 3 model error, 4 --save could
    not write.
    """
    if float_model is None and not per_layer:
        raise UsageError("give --float FLOAT.onnx (the float model to compare with), or "
                         "--per-layer")
    if float_model is None:
        given = [name for name, value in (("--save", save), ("--preset", preset),
                                          ("--preprocess", preprocess), ("--conf", conf),
                                          ("--iou", iou)) if value]
        if given:
            raise UsageError(f"{', '.join(given)}: for the comparison with --float; "
                             "--per-layer alone does not use them")
    configure_logging(quiet)
    backend = global_options(ctx).backend
    folder = load_model_folder(model)
    bundled = package_models_dir()
    if save and bundled is not None and folder.root.resolve().is_relative_to(bundled.resolve()):
        raise UsageError(f"--save: {folder.name} is a bundled model, part of axrun's "
                         "installation; copy its folder (axrun models --path NAME) to store "
                         "figures with it")
    recipe, origin = float_recipe(float_model, preset, preprocess) if float_model else \
        (None, "")
    graph = qdq_graph(folder) if per_layer else None  # refused now, not after comparing
    task_options: dict[str, Any] = {k: v for k, v in (("conf", conf), ("iou", iou))
                                    if v is not None}
    err = stderr_console()
    document: dict[str, Any] = {"model": str(folder.root)}
    stream = _images(images)
    # The per-layer ranking runs on the first images; kept here so that a stream
    # (stdin) is read once.
    first = list(itertools.islice(stream, layer_images + SPARE_IMAGES)) if per_layer else []
    exit_code = 0
    write_failed = False
    unreadable: list[str] = []

    def on_error(exc: InputError) -> None:
        unreadable.append(str(exc))
        print(f"error: {exc}", file=sys.stderr)

    if float_model is not None:
        if not quiet:
            err.print(f"float model preprocessing: {origin}" + (
                " (--preset or --preprocess checks it too)" if recipe is None else ""),
                markup=False)

        def on_image(outcome: Comparison | tuple[str, InputError]) -> None:
            if isinstance(outcome, tuple):
                print(f"error: {outcome[1]}", file=sys.stderr)
            elif not outcome.agrees and not quiet and not as_json:
                print(f"differs: {disagreement_text(outcome.to_dict())}", flush=True)

        fidelity = check_model(folder, float_model, itertools.chain(first, stream),
                               backend=backend, images_from=" ".join(images),
                               float_recipe=recipe, float_recipe_from=origin,
                               on_image=on_image, **task_options)
        tally = fidelity.tally
        if as_json:
            document["fidelity"] = fidelity.to_dict()
        else:
            print(tally.summary())
        if tally.agreement is None:
            exit_code = EXIT_INPUT_FAILED
            err.print("nothing was compared: " + (
                "no boxes on either side (lower --conf, or give images with objects)"
                if tally.images else "no image could be read"), markup=False)
        else:
            if save:
                try:
                    err.print(f"wrote {fidelity.save(folder.root)}", markup=False)
                except OutputError as exc:  # after the --json document, with its status
                    err.print(f"error: {exc}", markup=False)
                    write_failed = True
            if tally.agreement < min_agreement:
                err.print(f"agreement {tally.agreement:.4f} is below --min-agreement "
                          f"{min_agreement:g}", markup=False)
                exit_code = EXIT_INPUT_FAILED
            if tally.failed:
                exit_code = EXIT_INPUT_FAILED
    if per_layer:
        progress = Progress(TextColumn("per layer"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=err, redirect_stdout=False,
                            redirect_stderr=False, disable=quiet or not err.is_terminal)
        try:
            with progress:
                bar = progress.add_task("per layer", total=None)
                report = layer_report(folder, first, layer_images,
                                      lambda done, total: progress.update(
                                          bar, completed=done, total=total),
                                      on_error if float_model is None else None, graph)
        except InputError as exc:
            err.print(f"error: --per-layer: {exc}", markup=False)
            document["per_layer"] = {"error": str(exc)}
            exit_code = EXIT_INPUT_FAILED
        else:
            kept = folder.sidecar.int16 if folder.sidecar else ()
            _print_layers(report, top, kept, document if as_json else None)
    if as_json:
        print_json(document)
    if write_failed:
        raise typer.Exit(EXIT_OUTPUT)
    if exit_code or unreadable:
        raise typer.Exit(EXIT_INPUT_FAILED)


SPARE_IMAGES = 8  # images kept beyond --layer-images, in case some cannot be read


def _images(specs: list[str]) -> Iterator[Item]:
    """The images of ``specs``; videos are skipped with a line each."""
    said: set[str] = set()
    for spec in specs:
        if is_video(Path(spec)):
            print(f"{spec}: a video, skipped (check compares images)", file=sys.stderr)
    for item in expand([s for s in specs if not is_video(Path(s))], stdin=sys.stdin.buffer):
        if item.frame is not None and item.page is None:  # a video in a folder
            if item.source not in said:
                said.add(item.source)
                print(f"{item.source}: a video, skipped (check compares images)",
                      file=sys.stderr)
            continue
        yield item


def _print_layers(report: LayerReport, top: int, kept: tuple[str, ...],
                  document: dict[str, Any] | None) -> None:
    """The ranking: into ``document`` (--json), else as lines; ``kept``: the
    activations already at 16 bits (not ranked), which the suggestion keeps."""
    if document is not None:
        document["per_layer"] = report.to_dict()
        return
    print(f"per layer, on {report.images} image(s): the device outputs' SQNR is "
          f"{report.int8_sqnr_db:.1f} dB as compiled; rounded alone (the others unrounded), "
          "these 8-bit activations cost the most:")
    for layer in report.layers[:top]:
        print(f"  {layer.sqnr_db:6.1f} dB  {layer.tensor}  ({layer.op})")
    worst = report.worst(min(top, 4))
    already = "".join(f" --int16 {t}" for t in kept)
    if kept:
        print(f"already 16-bit (not ranked): {' '.join(kept)}")
    print(f"candidates for 16 bits: axrun compile ...{already}"
          + "".join(f" --int16 {t}" for t in worst)
          + f" (or ...{already} --auto-int16 {len(worst)})")


def register(app: typer.Typer) -> None:
    app.command("check")(handle_errors(check_command))
