"""The Typer application (`app`): global options and command registration."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from axrun._version import __version__
from axrun.cli import bench as bench_cmd
from axrun.cli import check as check_cmd
from axrun.cli import classify as classify_cmd
from axrun.cli import compile as compile_cmd
from axrun.cli import detect as detect_cmd
from axrun.cli import execute as exec_cmd
from axrun.cli import info as info_cmd
from axrun.cli import models as models_cmd
from axrun.cli._common import GlobalOptions, tidy_help
from axrun.cli.ultralytics import foreign_argument
from axrun.errors import EXIT_USAGE
from axrun.runtime import BACKEND_CHOICES

app = typer.Typer(
    name="axrun",
    help=(
        "Batch INT8 inference on Axelera Metis, or on axrun's built-in emulator when no "
        "card (no axelera.runtime) is present.\n\n"
        "Examples:\n\n"
        "  axrun classify photos/\n"
        "  axrun detect photos/ clip.mp4 --save-dir annotated/ -o boxes.jsonl\n"
        "  find . -name '*.jpg' | axrun classify - | jq -c .top[0]\n"
        "  axrun models\n\n"
        "Exit status: 0 all inputs succeeded, 1 some inputs failed, 2 usage error, "
        "3 model or device error, 4 output error, 130 interrupted. Each command's "
        "--help has more examples."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"axrun {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            envvar="AXRUN_BACKEND",
            help=f"Runtime backend: {', '.join(BACKEND_CHOICES)}. auto = the real "
            "axelera.runtime when it imports, else the emulator.",
            show_default=True,
        ),
    ] = "auto",
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    ctx.obj = GlobalOptions(backend=backend, debug=debug)


classify_cmd.register(app)
detect_cmd.register(app)
info_cmd.register(app)
models_cmd.register(app)
compile_cmd.register(app)
check_cmd.register(app)
bench_cmd.register(app)
exec_cmd.register(app)


def main() -> None:
    """Console-script entry point. Arguments written the Ultralytics way
    (``source=x``, ``--imgsz``) get a hint (:mod:`axrun.cli.ultralytics`) first."""
    command = typer.main.get_command(app)
    tidy_help(command)
    args = sys.argv[1:]
    commands = getattr(command, "commands", {})
    at = next((i for i, a in enumerate(args) if a in commands), None)
    if at is not None and args[at] != "exec":  # exec passes its arguments on
        options = {opt: None if param.is_flag else (param.metavar or "VALUE")
                   for param in commands[args[at]].params
                   if param.param_type_name == "option" for opt in param.opts}
        hint = foreign_argument(args[at + 1:], options)
        if hint is not None:
            print(f"error: {hint}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE)
    command()
