"""``axrun detect``: images and videos → boxes, annotated images and annotated video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from axrun.annotate import BoxAnnotator, SaveDir
from axrun.cli import shared as common
from axrun.cli._common import global_options, handle_errors, parse_decoder
from axrun.datasets import Crops, YoloLabels
from axrun.engine.process import tune_process
from axrun.errors import UsageError
from axrun.modelfolder import read_labels
from axrun.outputs import inputs_root
from axrun.sinks import Sink
from axrun.tasks import make_task
from axrun.tasks.detect import DetectOptions, Detector

DETECT = "Detection"
DEFAULTS = DetectOptions()  # the library's thresholds are the command's defaults


def _row(record: dict[str, Any]) -> list[str]:
    if "error" in record:
        return [common.source_cell(record), common.error_cell(record)]
    dets = record["detections"]
    text = ", ".join(f"{escape(d['label'])} {d['score']:.2f}" for d in dets[:8])
    more = f" (+{len(dets) - 8})" if len(dets) > 8 else ""
    return [common.source_cell(record), f"{len(dets)}: {text}{more}" if dets else "0"]


def detect(
    ctx: typer.Context,
    inputs: common.Inputs,
    model: common.ModelOpt = None,
    conf: Annotated[float, typer.Option("--conf", help="Minimum score.",
                                        rich_help_panel=DETECT)] = DEFAULTS.conf,
    iou: Annotated[float, typer.Option("--iou", help="NMS IoU threshold.",
                                       rich_help_panel=DETECT)] = DEFAULTS.iou,
    max_det: Annotated[int, typer.Option("--max-det", help="At most this many boxes per input.",
                                         rich_help_panel=DETECT)] = DEFAULTS.max_det,
    agnostic: Annotated[bool, typer.Option(
        "--agnostic", help="NMS across classes (default: per class).",
        rich_help_panel=DETECT)] = False,
    classes: Annotated[str | None, typer.Option(
        "--classes", metavar="NAMES", help="Keep only these classes: names or ids, comma-separated "
        "(person,car or 0,2).", rich_help_panel=DETECT)] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", metavar="FILE", help="Class names file (one per line), overriding the model's.",
        rich_help_panel=DETECT)] = None,
    decoder: Annotated[str | None, typer.Option(
        "--decoder", metavar="K=V,...",
        help="Decoder settings over axrun.json's, key=value pairs: "
        "format= one of yolox, yolox-decoded, ultralytics, ultralytics-transposed, "
        "boxes-scores, dfl, yolov5 (default: from the model's outputs); strides=[8,16,32]; "
        "anchors=yolov5 or a JSON list of w,h lists, one per stride (yolov5); sigmoid=false "
        "(yolov5 heads already sigmoided); reg_max=16 (dfl); check=false (no layout checks "
        "on the values). See the decoder table in docs/reference.md.",
        rich_help_panel=DETECT)] = None,
    save_dir: common.SaveDirOpt = None,
    save_txt: Annotated[Path | None, typer.Option(
        "--save-txt", metavar="DIR", help="Write a YOLO label file per image (and per "
        "video frame) here: 'class cx cy w h', normalized; empty when nothing was found.",
        rich_help_panel=common.OUTPUT)] = None,
    save_conf: Annotated[bool, typer.Option(
        "--save-conf", help="Add each box's score to the --save-txt lines.",
        rich_help_panel=common.OUTPUT)] = False,
    save_crop: Annotated[Path | None, typer.Option(
        "--save-crop", metavar="DIR", help="Cut every box out of the original image into "
        "DIR/<class>/<name>_<k>.jpg (k: the box's place in the record).",
        rich_help_panel=common.OUTPUT)] = None,
    line_width: common.LineWidthOpt = None,
    hide_labels: Annotated[bool, typer.Option(
        "--hide-labels", help="Draw boxes without their label tags (--save-dir).",
        rich_help_panel=common.OUTPUT)] = False,
    hide_conf: common.HideConfOpt = False,
    mean: common.MeanOpt = None,
    std: common.StdOpt = None,
    color: common.ColorOpt = None,
    args: common.CommonArgs | None = None,
) -> None:
    """Detect objects in images and video frames; one JSON record per input, in input
    order (a table on a terminal). Boxes are in original-image pixels.

    Examples:

      axrun detect photos/ --save-dir annotated/
      axrun detect clip.mp4 --save-dir out/ -o boxes.jsonl
      axrun detect photos/ --save-txt labels/ --save-conf    # YOLO label files
      axrun detect val2017/ -o preds.coco.json               # COCO results
      axrun detect photos/ --classes person,car --save-crop crops/

    Exit status: 0 all inputs succeeded, 1 some failed (each has an error record),
    2 usage error, 3 model or device error, 4 output error, 130 interrupted.
    """
    assert args is not None
    common.check_folders(args, {"--save-dir": save_dir, "--save-txt": save_txt,
                                "--save-crop": save_crop})
    if save_conf and save_txt is None:
        raise UsageError("--save-conf adds scores to the label files: give --save-txt DIR")
    folder = common.resolve_model(model, "detect")
    # None: the folder's own (some folders cannot say it, and the task says so)
    recipe = common.recipe_from_flags(folder, "detect", mean=mean, std=std, color=color) \
        if mean or std or color else None
    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    task = make_task(folder, "detect", recipe=recipe,
                     labels=read_labels(labels) if labels else None, conf=conf, iou=iou,
                     max_det=max_det, agnostic=agnostic, classes=wanted,
                     decoder=parse_decoder(decoder) if decoder else None)
    assert isinstance(task, Detector)
    table = common.TableSink(["input", "detections"], _row)
    root = inputs_root(args.inputs)
    writers: list[Sink] = []
    if save_dir:
        writers.append(SaveDir(save_dir, BoxAnnotator(line_width, not hide_labels,
                                                      not hide_conf),
                               vid_stride=args.vid_stride, inputs_root=root,
                               replace_others=args.overwrite))
    if save_txt:
        writers.append(YoloLabels(save_txt, root, conf=save_conf,
                                  replace_others=args.overwrite))
    if save_crop:
        writers.append(Crops(save_crop, root, replace_others=args.overwrite))
    tune_process()
    chosen = task.options.classes
    params = common.run_params(
        "detect", folder, args, conf=conf, iou=iou, max_det=max_det, agnostic=agnostic,
        classes=sorted(chosen) if chosen else None,
        labels=str(labels) if labels else None, recipe=task.preprocessor.recipe.to_dict(),
        decoder=task.format)
    options = {"recipe": recipe, "labels": read_labels(labels) if labels else None,
               "conf": conf, "iou": iou, "max_det": max_det, "agnostic": agnostic,
               "classes": wanted, "decoder": parse_decoder(decoder) if decoder else None}
    raise typer.Exit(common.execute(args, global_options(ctx).backend, folder, task, "detect",
                                    table, params, writers, options))


def register(app: typer.Typer) -> None:
    app.command("detect")(handle_errors(common.with_common_options(detect)))
