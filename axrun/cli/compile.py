"""``axrun compile``: a float ONNX model → a model folder the emulator runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from axrun.cli._common import (
    configure_logging,
    handle_errors,
    parse_decoder,
    parse_pairs,
    stderr_console,
)
from axrun.compiler import CompileOptions, compile_model
from axrun.errors import UsageError
from axrun.preprocess import PreprocessRecipe

PREPROCESS_HELP = (
    "Preprocessing recipe, key=value pairs separated by commas: mode (crop, letterbox or "
    "stretch), resize (short side in crop mode), color (rgb or bgr), mean and std "
    "(0-255 units: one value, or three joined by /), pad_value (letterbox, 0-255), "
    "align (center or topleft). See the examples above."
)


# What common training recipes feed a network (0-255 units; torchvision's ImageNet mean
# and std are 0.485/0.456/0.406 and 0.229/0.224/0.225 of 255).
PRESETS = {
    "imagenet-torchvision": "mode=crop,resize=256,color=rgb,mean=123.675/116.28/103.53,"
                            "std=58.395/57.12/57.375",
    "yolo-ultralytics": "mode=letterbox,color=rgb,mean=0,std=255,pad_value=114,align=center",
    "yolox": "mode=letterbox,color=bgr,mean=0,std=1,pad_value=114,align=topleft",
}
METADATA_KEY = "axrun.preprocess"  # an ONNX metadata property holding a recipe


def metadata_recipe(model: Path) -> PreprocessRecipe | None:
    """The recipe in the model's ONNX metadata (``axrun.preprocess``), None without one.

    Raises:
        UsageError: the metadata's recipe cannot be read (named as for --preprocess).
    """
    try:
        import onnx

        props = {p.key: p.value for p in
                 onnx.load(str(model), load_external_data=False).metadata_props}
    except Exception:
        return None
    if METADATA_KEY not in props:
        return None
    try:
        return parse_recipe(props[METADATA_KEY])
    except UsageError as exc:
        raise UsageError(f"{model}: its {METADATA_KEY} metadata: {exc}") from exc


def choose_recipe(model: Path, preset: str | None, preprocess: str | None) -> \
        tuple[PreprocessRecipe, str]:
    """The recipe, and where it came from: ``--preset`` with ``--preprocess`` over it,
    or the model's own ONNX metadata (``axrun.preprocess``). Never a guess.

    Raises:
        UsageError: none of them (the presets are listed), or an unknown preset.
    """
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, not {preset!r}")
    text = PRESETS[preset] if preset else None
    if preprocess:
        text = f"{text},{preprocess}" if text else preprocess
        return parse_recipe(text), "--preprocess" + (f" over --preset {preset}" if preset
                                                     else "")
    if text:
        return parse_recipe(text), f"--preset {preset}"
    recipe = metadata_recipe(model)
    if recipe is not None:
        return recipe, f"the model's {METADATA_KEY} metadata"
    raise UsageError("how does the model expect its images? give --preprocess (mode=crop,"
                     "resize=256,mean=...,std=...) or --preset (" + ", ".join(PRESETS)
                     + "): axrun cannot tell, and a wrong guess quantizes a model that "
                     "answers wrongly")


def parse_recipe(text: str) -> PreprocessRecipe:
    """``mode=crop,resize=256,mean=127,std=128`` → a recipe (usage errors explained)."""
    pairs: dict[str, Any] = parse_pairs(text, "--preprocess")
    for key, kind in (("mean", "numbers"), ("std", "numbers"), ("resize", "an integer"),
                      ("pad_value", "an integer")):
        if key in pairs:
            try:
                if kind == "numbers":
                    values = [float(v) for v in pairs[key].split("/")]
                    pairs[key] = tuple(values * 3 if len(values) == 1 else values)
                else:
                    pairs[key] = int(pairs[key])
            except ValueError:
                raise UsageError(f"--preprocess: {key}={pairs[key]} is not {kind} (one, or "
                                 "three joined by /)" if kind == "numbers" else
                                 f"--preprocess: {key}={pairs[key]} is not {kind}") from None
    try:
        return PreprocessRecipe.from_dict(pairs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--preprocess: {exc}") from exc


def parse_ints(text: str | None, option: str, count: int | None = None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if count is not None and len(values) != count:
        raise UsageError(f"{option}: expected {count} integers, got {len(values)}")
    return values


def parse_spatial_pad(text: str | None) -> tuple[int, int, int, int]:
    """``--spatial-pad top,bottom,left,right`` (none: no extra rows or columns)."""
    values = parse_ints(text, "--spatial-pad", 4)
    if values is None:
        return (0, 0, 0, 0)
    top, bottom, left, right = values
    return top, bottom, left, right


def compile_command(
    model: Annotated[Path, typer.Argument(help="The float ONNX model.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model folder to write.")],
    calibration: Annotated[Path, typer.Option(
        "--calibration", help="Folder of real images to calibrate INT8 ranges on.")],
    preprocess: Annotated[str | None, typer.Option("--preprocess", metavar="K=V,...",
                                                   help=PREPROCESS_HELP)] = None,
    preset: Annotated[str | None, typer.Option(
        "--preset", metavar="NAME", help="A training recipe's preprocessing: "
        + ", ".join(PRESETS) + " (--preprocess keys override it). One of the two is "
        "needed unless the model's ONNX metadata has axrun.preprocess.")] = None,
    postamble_from: Annotated[list[str] | None, typer.Option(
        "--postamble-from",
        help="Cut here: the device part ends at these tensors, everything after them runs "
        "as a float postprocess_graph.onnx on the host. Repeat for several.")] = None,
    task: Annotated[str | None, typer.Option(
        "--task", help="classify or detect (written to axrun.json).")] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="Class names, one per line (copied into the folder).")] = None,
    decoder: Annotated[str | None, typer.Option(
        "--decoder", metavar="K=V,...",
        help="Decoder settings as key=value pairs, e.g. format=yolox.")] = None,
    input_shape: Annotated[str | None, typer.Option(
        "--input-shape", help="Fix a dynamic input shape, e.g. 1,3,224,224.")] = None,
    channel_multiple: Annotated[int, typer.Option(
        "--channel-multiple", help="Pad input channels to a multiple of this.")] = 4,
    output_channel_multiple: Annotated[int, typer.Option(
        "--output-channel-multiple", help="Pad output channels to a multiple of this.")] = 64,
    spatial_pad: Annotated[str | None, typer.Option(
        "--spatial-pad", help="Extra input rows/columns: top,bottom,left,right.")] = None,
    calibration_limit: Annotated[int, typer.Option(
        "--calibration-limit", help="Use at most this many calibration images.")] = 200,
    int16: Annotated[list[str] | None, typer.Option(
        "--int16", help="Mixed precision: keep this activation tensor at 16 bits (weights "
        "stay int8). Repeat for several. For layers whose 8-bit error ruins accuracy.")] = None,
    auto_int16: Annotated[int, typer.Option(
        "--auto-int16", metavar="N", min=0,
        help="Mixed precision, chosen for you: rank the 8-bit activations by what their "
        "rounding costs the outputs (as axrun check --per-layer does, on up to 4 held-out "
        "images, else calibration images) and keep the N costliest at 16 bits. Compiles "
        "twice.")] = 0,
    holdout: Annotated[int, typer.Option(
        "--holdout", metavar="N", min=0,
        help="Images of the calibration folder set aside (at most a fifth of it) to "
        "compare the INT8 model with the float one after compiling, with the same "
        "recipe on both sides (what quantization changed; axrun check --preset/--preprocess "
        "checks the recipe too); the figures go to fidelity.json. 0: no comparison.")] = 20,
    quiet: Annotated[bool, typer.Option(
        "-q", "--quiet", help="Only warnings and errors: no progress bar, no figures, no "
        "'wrote' line (a held-out agreement below 90% is a warning).")] = False,
) -> None:
    """Quantize a float ONNX model to INT8 and write a model folder the emulator runs.

    The preprocessing must be given (--preprocess, --preset, or the model's metadata);
    the task is read from the outputs when --task does not say it (the reason is
    printed); the calibration sample is spread over the folder's sub-folders. Images
    held out of it (--holdout) then compare the INT8 model with the float one: the
    figures are printed and stored in the folder (fidelity.json, shown by axrun info).

    Examples:

      axrun compile resnet50.onnx -o my-resnet --calibration photos/ \\
        --task classify --labels imagenet.txt --preset imagenet-torchvision

      axrun compile lite.onnx -o my-lite --calibration photos/ \\
        --preprocess mode=crop,resize=256,mean=127,std=128

      axrun compile yolox.onnx -o my-yolox --calibration photos/ \\
        --task detect --decoder format=yolox --preset yolox --auto-int16 4 \\
        --postamble-from 1062 --postamble-from 1063 --postamble-from 1045 \\
        --postamble-from 1104 --postamble-from 1105 --postamble-from 1087 \\
        --postamble-from 1146 --postamble-from 1147 --postamble-from 1129

    axrun info FOLDER shows what was written; classify and detect run it with -m FOLDER;
    axrun check FOLDER --float MODEL.onnx IMAGES... compares it on other images.
    """
    recipe, origin = choose_recipe(model, preset, preprocess)
    options = CompileOptions(
        model=model, output=output, calibration=calibration,
        recipe=recipe, task=task, labels=labels, decoder=parse_decoder(decoder),
        postamble_from=tuple(postamble_from or ()),
        input_shape=parse_ints(input_shape, "--input-shape"),
        channel_multiple=channel_multiple, output_channel_multiple=output_channel_multiple,
        spatial_pad=parse_spatial_pad(spatial_pad),
        calibration_limit=calibration_limit, int16=tuple(int16 or ()),
        auto_int16=auto_int16, holdout=holdout,
    )
    configure_logging(quiet)
    console = stderr_console()

    progress = Progress(TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=console, redirect_stdout=False,
                        redirect_stderr=False, disable=quiet or not console.is_terminal)
    with progress:
        bar = progress.add_task("calibrating", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        path = compile_model(options, on_progress)
    if not quiet:
        said = ", ".join(f"{k}={v}" for k, v in recipe.to_dict().items() if v is not None)
        console.print(f"wrote {path} (preprocessing from {origin}: {said})", markup=False)


def register(app: typer.Typer) -> None:
    app.command("compile")(handle_errors(compile_command))
