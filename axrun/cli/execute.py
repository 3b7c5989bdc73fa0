"""``axrun exec``: run a program written against axelera.runtime on the emulator."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from axrun import execute as runner
from axrun.cli._common import handle_errors


def exec_command(
    command: Annotated[list[str], typer.Argument(
        help="The program and its arguments (after --).", show_default=False)],
    devices: Annotated[int | None, typer.Option(
        "--devices", help="Emulated devices, 4 cores each (AXRUN_EMULATOR_DEVICES).")] = None,
    latency_ms: Annotated[float | None, typer.Option(
        "--latency-ms", help="Minimum device time per inference (AXRUN_EMULATOR_LATENCY_MS)."
    )] = None,
    no_compute: Annotated[bool, typer.Option(
        "--no-compute", help="Skip the network; outputs hold the zero point "
        "(AXRUN_EMULATOR_COMPUTE=0).")] = False,
) -> None:
    """Run COMMAND with `import axelera.runtime` resolving to axrun's emulator.

    Examples (app.py gets the folder of the bundled model yolox-nano-coco):

      axrun exec -- python app.py "$(axrun models --path yolox-nano-coco)"
      axrun exec --devices 2 --latency-ms 2 -- python app.py my-model/

    The exit status is COMMAND's; signals are forwarded to it.
    """
    if runner.real_sdk_present():
        print("axrun exec: a real axelera.runtime is installed; this run uses the axrun "
              "emulator instead", file=sys.stderr)
    env = runner.child_environment(devices, latency_ms, compute=not no_compute)
    raise typer.Exit(runner.run(command, env))


def register(app: typer.Typer) -> None:
    app.command(
        "exec", context_settings={"allow_interspersed_args": False},
    )(handle_errors(exec_command))
