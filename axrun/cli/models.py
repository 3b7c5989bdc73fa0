"""``axrun models``: the models that can be given by name (``-m yolox-nano-coco``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from axrun.cli._common import handle_errors, print_json, stdout_console
from axrun.errors import AxrunError, ModelError
from axrun.modelfolder import (
    MODELS_ENV,
    NamedModel,
    available_models,
    load_model_folder,
    model_search_path,
    network_input_hw,
)


def summary(model: NamedModel) -> dict[str, Any]:
    """One model as ``axrun models --json`` lists it (keys documented in :func:`models`);
    a folder that cannot be read gets ``error`` and None for what it would have said."""
    entry: dict[str, Any] = {"name": model.name, "task": None, "input_hw": None,
                             "classes": None, "path": str(model.path),
                             "source": model.source, "error": None}
    try:
        folder = load_model_folder(model.path)
        entry["task"] = folder.task
        entry["classes"] = len(folder.labels) if folder.labels else None
        entry["input_hw"] = list(network_input_hw(folder))
    except AxrunError as exc:
        entry["error"] = str(exc)
    return entry


def models(
    name: Annotated[str | None, typer.Argument(
        help="Show only this model (default: all).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON document: search_path (the folders, in order) and "
        "models (name, task, input_hw [H, W], classes, path, source, error).")] = False,
    path_only: Annotated[bool, typer.Option(
        "--path", help="Print only the models' folders, one a line (for scripts).")] = False,
) -> None:
    """List the models that can be given by name wherever a model is accepted.

    A path that exists always wins over a name. A name is looked up in each
    folder of AXRUN_MODELS (':'-separated), then in the models bundled with
    axrun: the first folder that has it wins.

    Examples:

      axrun models
      axrun models --json
      axrun detect -m yolox-nano-coco photos/
      AXRUN_MODELS=~/models axrun classify -m my-resnet photos/

    A folder that cannot be read is listed with its error.
    """
    found = available_models()
    if name is not None:
        found = [m for m in found if m.name == name]
        if not found:
            names = ", ".join(m.name for m in available_models()) or "none"
            raise ModelError(f"no model named {name!r}; models by name: {names}")
    if path_only:
        for m in found:
            print(m.path)
        return
    entries = [summary(m) for m in found]
    if as_json:
        print_json({"search_path": [str(p) for p in model_search_path()], "models": entries})
        return
    out = stdout_console()
    if not entries:
        out.print(f"no models found (set {MODELS_ENV} to folders of model folders)")
    else:
        table = Table()
        for col in ("name", "task", "input (HxW)", "classes", "from", "folder"):
            table.add_column(col, justify="right" if col == "classes" else "left",
                             no_wrap=col != "folder")
        for e in entries:
            size = "x".join(map(str, e["input_hw"])) if e["input_hw"] else "-"
            task = e["task"] or ("[red]unreadable[/red]" if e["error"] else "not set")
            table.add_row(e["name"], task, size, str(e["classes"] or "-"), e["source"],
                          e["path"])
        out.print(table)
        for e in entries:
            if e["error"]:
                out.print(f"{e['name']}: {e['error']}", markup=False)
    searched = ", ".join(str(p) for p in model_search_path()) or "nothing"
    out.print(f"searched, in order: {searched}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("models")(handle_errors(models))
