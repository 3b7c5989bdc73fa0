"""``axrun classify``: images and video frames → top-k classes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from axrun.annotate import ClassAnnotator, SaveDir
from axrun.cli import shared as common
from axrun.cli._common import global_options, handle_errors
from axrun.engine.process import tune_process
from axrun.errors import UsageError
from axrun.modelfolder import read_labels
from axrun.outputs import inputs_root
from axrun.sinks import output_format
from axrun.tasks.classify import TOP_K, Classifier

CLASSIFY = "Classification"


def _row(record: dict[str, Any]) -> list[str]:
    if "error" in record:
        return [common.source_cell(record), common.error_cell(record)]
    top = record["top"]
    best = f"[bold]{escape(top[0]['label'])}[/bold] {top[0]['score']:.2f}" if top else "-"
    rest = ", ".join(f"{escape(t['label'])} {t['score']:.2f}" for t in top[1:])
    return [common.source_cell(record), best + (f"  [dim]{rest}[/dim]" if rest else "")]


def classify(
    ctx: typer.Context,
    inputs: common.Inputs,
    model: common.ModelOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Classes per input.",
                                       rich_help_panel=CLASSIFY)] = TOP_K,
    labels: Annotated[Path | None, typer.Option(
        "--labels", metavar="FILE", help="Class names file (one per line), overriding the model's.",
        rich_help_panel=CLASSIFY)] = None,
    scores: Annotated[str | None, typer.Option(
        "--scores", metavar="logits|probabilities",
        help="What the network outputs: logits (softmax applied) or "
        "probabilities (default: from axrun.json, else logits).",
        rich_help_panel=CLASSIFY)] = None,
    save_dir: common.SaveDirOpt = None,
    hide_conf: common.HideConfOpt = False,
    resize: common.ResizeOpt = None,
    crop: common.CropOpt = None,
    mean: common.MeanOpt = None,
    std: common.StdOpt = None,
    color: common.ColorOpt = None,
    args: common.CommonArgs | None = None,
) -> None:
    """Classify images and video frames; one JSON record per input, in input order
    (a table on a terminal).

    Examples:

      axrun classify photos/                       # a table on the terminal
      axrun classify photos/ -o top5.jsonl         # or .json, .csv
      find . -name '*.jpg' | axrun classify - | jq -c '.top[0]'
      axrun classify -m my-model photos/ --save-dir labelled/

    Exit status: 0 all inputs succeeded, 1 some failed (each has an error record),
    2 usage error, 3 model or device error, 4 output error, 130 interrupted.
    """
    assert args is not None
    if args.output not in (None, "-") and output_format(args.output) == "coco":
        raise UsageError(f"-o {args.output}: COCO results hold boxes: only detection "
                         "writes them (use .jsonl, .json or .csv)")
    common.check_folders(args, {"--save-dir": save_dir})
    folder = common.resolve_model(model, "classify")
    recipe = common.recipe_from_flags(folder, "classify", resize=resize, crop=crop,
                                      mean=mean, std=std, color=color)
    names = read_labels(labels) if labels else None
    task = Classifier(folder, recipe=recipe, top_k=top_k, labels=names, scores=scores)
    table = common.TableSink(["input", "top classes"], _row)
    tune_process()
    params = common.run_params(
        "classify", folder, args, top_k=task.top_k, labels=str(labels) if labels else None,
        scores=task.score_kind, recipe=task.preprocessor.recipe.to_dict())
    saver = SaveDir(save_dir, vid_stride=args.vid_stride, inputs_root=inputs_root(args.inputs),
                    labeler=ClassAnnotator(min(3, task.top_k), not hide_conf),
                    replace_others=args.overwrite) if save_dir else None
    options = {"recipe": task.preprocessor.recipe, "labels": names, "top_k": task.top_k,
               "scores": scores}
    raise typer.Exit(common.execute(args, global_options(ctx).backend, folder, task, "classify",
                                    table, params, [saver] if saver else [], options))


def register(app: typer.Typer) -> None:
    app.command("classify")(handle_errors(common.with_common_options(classify)))
