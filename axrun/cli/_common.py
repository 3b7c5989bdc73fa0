"""What every command shares: global options, the stderr console, error handling."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import typer
from rich.console import Console

from axrun.errors import EXIT_INTERRUPTED, EXIT_OUTPUT, AxrunError, ParameterError, UsageError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class GlobalOptions:
    backend: str
    debug: bool


def stderr_console() -> Console:
    """Logs, progress and summaries go here, never to stdout (lines are not wrapped
    when stderr is a file or a pipe)."""
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def stdout_console() -> Console:
    """For human-readable data on stdout; not wrapped at 80 columns when piped."""
    return Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 160)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a message comes: while the progress bar
    is shown, that is the bar's proxy, which prints the line above the bar."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """The stream is always the current ``sys.stderr``."""


def configure_logging(quiet: bool) -> None:
    """The library's ``axrun`` logger → one plain line per message on stderr."""
    logger = logging.getLogger("axrun")
    logger.handlers[:] = []
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def global_options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, GlobalOptions) else None
    return obj or GlobalOptions(backend="auto", debug=False)


# Library parameters whose flag is not ``--`` + the name with dashes.
FLAGS = {"output": "-o", "append": "--resume"}


def flag(parameter: str) -> str:
    """The command-line flag for a library parameter: ``top_k`` → ``--top-k``."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def message(exc: AxrunError) -> str:
    """An error as the command line says it: parameters named by their flags."""
    if isinstance(exc, ParameterError):
        return f"{flag(exc.parameter)} {exc.problem}"
    return str(exc)


def handle_errors(func: F) -> F:
    """Turn axrun's exceptions into ``error: ...`` on stderr and the documented exit
    status: the one place where library errors become the command line's."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx")
        debug = global_options(ctx).debug if isinstance(ctx, typer.Context) else False
        try:
            return func(*args, **kwargs)
        except AxrunError as exc:
            if debug:
                stderr_console().print_exception()
            print(f"error: {message(exc)}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except OSError as exc:
            # Not translated where it was raised (each file axrun reads or writes says
            # what failed as an axrun error): a file this process could not write to,
            # such as a closed standard stream.
            if debug:
                stderr_console().print_exception()
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
            raise typer.Exit(EXIT_OUTPUT) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: ``a=1,b=[2,3]`` → ``a=1``, ``b=[2,3]``."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_pairs(text: str, option: str) -> dict[str, str]:
    """``key=value,key=value`` (values may hold bracketed lists) → a dict of strings."""
    out = {}
    for part in filter(None, (p.strip() for p in _split_top_level(text))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option}: expected key=value, got {part!r}")
        out[key.strip()] = value.strip()
    return out


def parse_decoder(text: str | None) -> dict[str, Any]:
    """``--decoder key=value,...``: values as JSON where they parse (numbers, lists),
    else as strings."""
    out: dict[str, Any] = {}
    for key, value in parse_pairs(text or "", "--decoder").items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def reflow(doc: str) -> str:
    """A docstring as ``--help`` shows it: each paragraph one line (the terminal wraps
    it), indented lines (examples) kept as they are."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith(" ") else " ".join(p.split("\n"))
                       for p in paragraphs)


# What a value is called in --help when its option does not name it, by its type.
METAVARS = (("path", "PATH"), ("int", "N"), ("float", "NUM"), ("str", "TEXT"),
            ("text", "TEXT"))


def _value_name(param: Any) -> str:
    descriptor = getattr(param, "type_descriptor", None)  # typer >= 0.22
    if descriptor is not None:
        kind = "path" if descriptor.is_path else param.bare_type()
    else:  # click's parameter types
        kind = getattr(getattr(param, "type", None), "name", "")
    return next((name for key, name in METAVARS if key in kind.lower()), "VALUE")


def tidy_help(command: Any) -> None:
    """Make ``--help`` read like other tools': flags shown without a type (not
    ``<bool>``), values named by short upper-case words (``N``, ``PATH``, ``DIR``...),
    arguments by their names (``INPUTS...``); for ``command`` (a click group or
    command) and its sub-commands. Names an option or argument gives itself stay."""
    for cmd in [command, *getattr(command, "commands", {}).values()]:
        if cmd.help:
            cmd.help = reflow(cmd.help)
        context = typer.Context(cmd, help_option_names=["-h", "--help"])
        shown = [*cmd.params, cmd.get_help_option(context)]  # help: made on first use
        for param in filter(None, shown):
            if param.metavar is not None:
                continue
            if param.param_type_name == "argument":
                param.metavar = (param.name or "value").upper()
            elif param.is_flag:
                param.metavar = ""
            else:
                param.metavar = _value_name(param)

