"""What ``axrun classify`` and ``axrun detect`` share: inputs, engine options, outputs,
progress, the summary and signal handling; :func:`run_command` runs one of them."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import io
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, ClassVar, Protocol, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from axrun.cli import STARTED
from axrun.cli._common import configure_logging, parse_pairs, stderr_console
from axrun.engine import Engine, EngineConfig, parse_devices
from axrun.errors import (
    EXIT_INPUT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AxrunError,
    OutputError,
    UsageError,
)
from axrun.modelfolder import ModelFolder, bundled_model, load_model_folder
from axrun.outputs import check_results_file, check_save_dir
from axrun.preprocess import PreprocessRecipe
from axrun.results import Result
from axrun.resume import ResumeState, absolute, model_fingerprint, reorder, write_params
from axrun.resume import prepare as prepare_resume
from axrun.run import Run, RunPolicy, RunSummary
from axrun.sinks import (
    JsonLinesSink,
    RecordSink,
    Sink,
    is_stream,
    open_file_sink,
    output_failed,
    output_format,
    stdout_is_terminal,
)
from axrun.sources import (
    RECONNECTS,
    Item,
    SourceOptions,
    VideoReader,
    countable,
    expand,
    frame_indices,
    is_video,
    parse_bytes,
    video_frames,
)
from axrun.tasks.base import Task, preprocess_recipe
from axrun.tasks.classify import Classifier

INPUT = "Inputs"
DEVICE = "Device"
OUTPUT = "Output"
PRE = "Preprocessing (for model folders without axrun.json)"

Inputs = Annotated[list[str], typer.Argument(
    help="Image/video files, folders (recursive), globs, - (paths on stdin), list.txt "
    "(one input per line), http(s):// images and videos, rtsp:// or rtmp:// streams, "
    "cameras (0, /dev/video0).",
    show_default=False)]
ModelOpt = Annotated[Path | None, typer.Option(
    "-m", "--model", metavar="MODEL", help="Model folder, its model.json, a parent of "
    "one, or a model's name (axrun models lists them; default: the bundled model).",
    rich_help_panel=INPUT)]
NullOpt = Annotated[bool, typer.Option(
    "-0", "--null", help="Paths on stdin are NUL-separated (find -print0).",
    rich_help_panel=INPUT)]
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", help="Stop after this many inputs (video frames count one each).",
    rich_help_panel=INPUT)]
StrideOpt = Annotated[int, typer.Option(
    "--vid-stride", help="Use every n-th video frame.", rich_help_panel=INPUT)]
MaxReadOpt = Annotated[str, typer.Option(
    "--max-read-bytes", metavar="SIZE",
    help="Most bytes read from an input that is not a regular file "
    "(a pipe, a device, an image URL): past it, an error record (K, M, G suffixes).",
    rich_help_panel=INPUT)]
DecodeOpt = Annotated[str, typer.Option(
    "--decode", metavar="reduced|full",
    help="reduced: decode a JPEG at 1/2, 1/4 or 1/8 scale when the "
    "preprocessing shrinks it at least that much (much faster on phone photos); full: "
    "always at full size. Annotated copies and crops are full size either way, and the "
    "records the same with or without them.",
    rich_help_panel=INPUT)]
BackgroundOpt = Annotated[str, typer.Option(
    "--background", metavar="COLOR",
    help="Colour shown under transparent pixels (PNG, WebP, GIF, TIFF, "
    "HEIC with alpha), as a viewer composites them: white, black, grey, R,G,B or "
    "#RRGGBB.", rich_help_panel=INPUT)]
RayOpt = Annotated[str | None, typer.Option(
    "--ray", metavar="ADDRESS", help="Run on a Ray cluster: local (one on this machine, "
    "its devices; the emulator's without a card), auto, or ray://HOST:PORT. One actor per "
    "Metis device; records come back here in input order (-o, the table). Needs "
    "axrun[ray].", rich_help_panel=DEVICE)]
ShardOpt = Annotated[str | None, typer.Option(
    "--shard", metavar="K/N", help="Run only shard K of N (1/4 ... 4/4): inputs are split "
    "by a hash of their names, the same on every machine; one job per shard, then merge "
    "the records (README: Scale out).", rich_help_panel=INPUT)]
ReconnectsOpt = Annotated[int, typer.Option(
    "--reconnects", help="Reopen a live stream or camera that drops this often in a row "
    "(after 1, 2, 4... s), then an error record.", rich_help_panel=INPUT)]
OutputOpt = Annotated[str | None, typer.Option(
    "-o", "--output", metavar="FILE", help="Write records to FILE.jsonl, FILE.json (one "
    "array) or FILE.csv, boxes to FILE.coco.json (COCO results, detect); - for JSON lines "
    "on stdout. Default: JSON lines when stdout is not a terminal, else a table.",
    rich_help_panel=OUTPUT)]
QuietOpt = Annotated[bool, typer.Option(
    "-q", "--quiet", help="No progress bar, no summary.", rich_help_panel=OUTPUT)]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an existing -o results file, and files an earlier run "
    "wrote from other inputs in the output folders (without it, both are refused; "
    "--resume continues a results file).", rich_help_panel=OUTPUT)]
MaxErrorsOpt = Annotated[int | None, typer.Option(
    "--max-errors", help="Stop after this many failed inputs.", rich_help_panel=OUTPUT)]
FailFastOpt = Annotated[bool, typer.Option(
    "--fail-fast", help="Stop at the first failed input.", rich_help_panel=OUTPUT)]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue an interrupted run into -o FILE.jsonl: inputs already "
    "recorded (same path, size and mtime) are skipped, a partial last line is repaired; "
    "refused if the model or options differ.", rich_help_panel=OUTPUT)]
CoresOpt = Annotated[int, typer.Option(
    "--aipu-cores", help="Cores to use per device (instances = cores // batch).",
    rich_help_panel=DEVICE)]
DevicesOpt = Annotated[str, typer.Option(
    "--devices", metavar="all|LIST", help="all, or device indices/names separated by commas.",
    rich_help_panel=DEVICE)]
DoubleBufferOpt = Annotated[bool, typer.Option(
    "--double-buffer/--no-double-buffer", help="DMA double buffering (results two calls "
    "late, more throughput).", rich_help_panel=DEVICE)]
DeviceConfigOpt = Annotated[str | None, typer.Option(
    "--device-config", metavar="K=V,...",
    help="Device settings before connecting, KEY=VALUE pairs: clock_profile (MHz, "
    "default 800) and per core clock_profile_core_N, mvm_utilisation_core_N (N: 0 to 3; "
    "percent, default 100), ddr_size (bytes); over axrun.json's device_config.",
    rich_help_panel=DEVICE)]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--decode-threads", help="Threads doing host work: decode + preprocess and "
    "postprocessing, this command's own thread counted (default: CPU count; at most 4 "
    "x CPU count).",
    rich_help_panel=DEVICE)]
SaveDirOpt = Annotated[Path | None, typer.Option(
    "--save-dir", metavar="DIR", help="Write annotated copies here: images under their "
    "own names (sub-folders mirrored), videos as .mp4.", rich_help_panel=OUTPUT)]
LineWidthOpt = Annotated[int | None, typer.Option(
    "--line-width", min=1, help="Box outline width in pixels in annotated copies "
    "(default: from the image size).", rich_help_panel=OUTPUT)]
HideConfOpt = Annotated[bool, typer.Option(
    "--hide-conf", help="Labels without scores in annotated copies.",
    rich_help_panel=OUTPUT)]
ResizeOpt = Annotated[int | None, typer.Option(
    "--resize", help="Resize the short side to N, then centre-crop to the input size.",
    rich_help_panel=PRE)]
CropOpt = Annotated[float | None, typer.Option(
    "--crop", help="Centre-crop fraction instead of --resize: resize = input / FRACTION "
    "(0.875 = 224 of 256).", rich_help_panel=PRE)]
MeanOpt = Annotated[str | None, typer.Option(
    "--mean", metavar="R,G,B",
    help="Per-channel mean in 0-255 units, one value or R,G,B.", rich_help_panel=PRE)]
StdOpt = Annotated[str | None, typer.Option(
    "--std", metavar="R,G,B",
    help="Per-channel std in 0-255 units, one value or R,G,B.", rich_help_panel=PRE)]
ColorOpt = Annotated[str | None, typer.Option(
    "--color", metavar="rgb|bgr",
    help="Channel order the network expects: rgb or bgr.", rich_help_panel=PRE)]


@dataclass(frozen=True)
class CommonArgs:
    inputs: list[str]
    model: Path | None
    output: str | None
    null: bool
    limit: int | None
    vid_stride: int
    max_read_bytes: str
    reconnects: int
    quiet: bool
    overwrite: bool
    max_errors: int | None
    fail_fast: bool
    resume: bool
    aipu_cores: int
    devices: str
    double_buffer: bool
    decode_threads: int | None
    device_config: str | None
    background: str
    decode: str
    shard: str | None
    ray: str | None

    @property
    def jsonl_file(self) -> bool:
        """Whether the output is a JSON-lines file (which can be resumed: not a device)."""
        return self.output not in (None, "-") and output_format(self.output) == "jsonl" \
            and not is_stream(self.output)

    def validate(self) -> None:
        """Check the options that need no model or device (before either is opened)."""
        self.source_options()
        RunPolicy(self.max_errors, self.fail_fast)
        if self.resume and not self.jsonl_file:
            raise UsageError("--resume needs a JSON-lines output: -o results.jsonl")
        if self.output is not None:
            check_results_file(self.output, self.inputs, overwrite=self.overwrite,
                               resume=self.resume)
        if self.output in (None, "-") and sys.stdout is None:  # started with >&-
            raise OutputError("stdout is closed: nowhere to write the records; give -o FILE")
        if self.ray is not None and self.output not in (None, "-") and \
                output_format(self.output) == "coco":
            raise UsageError("--ray writes records (-o .jsonl, .json, .csv, the table); "
                             "COCO results need a run on this machine")
        self.engine_config()

    def engine_config(self) -> EngineConfig:
        return EngineConfig(aipu_cores=self.aipu_cores, devices=parse_devices(self.devices),
                            double_buffer=self.double_buffer,
                            decode_threads=self.decode_threads,
                            device_config=parse_device_config(self.device_config),
                            decode=self.decode)

    def source_options(self) -> SourceOptions:
        return SourceOptions(vid_stride=self.vid_stride, limit=self.limit, null=self.null,
                             max_read_bytes=parse_bytes(self.max_read_bytes),
                             reconnects=self.reconnects,
                             background=parse_color(self.background, "--background"),
                             shard=parse_shard(self.shard))


COMMON_OPTIONS: list[tuple[str, Any, Any]] = [
    ("output", OutputOpt, None), ("null", NullOpt, False), ("limit", LimitOpt, None),
    ("vid_stride", StrideOpt, 1), ("max_read_bytes", MaxReadOpt, "1G"),
    ("reconnects", ReconnectsOpt, RECONNECTS), ("quiet", QuietOpt, False),
    ("overwrite", OverwriteOpt, False),
    ("max_errors", MaxErrorsOpt, None),
    ("fail_fast", FailFastOpt, False), ("resume", ResumeOpt, False),
    ("aipu_cores", CoresOpt, 4), ("devices", DevicesOpt, "all"),
    ("double_buffer", DoubleBufferOpt, True), ("decode_threads", ThreadsOpt, None),
    ("device_config", DeviceConfigOpt, None), ("background", BackgroundOpt, "white"),
    ("decode", DecodeOpt, "reduced"), ("shard", ShardOpt, None), ("ray", RayOpt, None),
]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard 2/4`` → (2, 4).

    Raises:
        UsageError: not K/N with 1 <= K <= N.
    """
    if text is None:
        return None
    k, sep, n = text.partition("/")
    if not (sep and k.strip().isdigit() and n.strip().isdigit()) or \
            not 1 <= int(k) <= int(n):
        raise UsageError(f"--shard must be K/N with 1 <= K <= N (2/4, say), not {text!r}")
    return int(k), int(n)


def parse_device_config(text: str | None) -> dict[str, int] | None:
    """``--device-config clock_profile=600,mvm_utilisation_core_0=57`` → settings."""
    if not text:
        return None
    settings = {}
    for key, value in parse_pairs(text, "--device-config").items():
        try:
            settings[key] = int(value, 0)  # 0x40000000 too
        except ValueError:
            raise UsageError(f"--device-config {key}: expected an integer, got {value!r}") \
                from None
    return settings


def with_common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared input, output and device options. The command declares
    ``inputs``, ``model`` and ``args``; it receives the options as ``args``
    (:class:`CommonArgs`), and Typer sees them in its signature."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "args"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                annotation=annotation)
              for name, annotation, default in COMMON_OPTIONS]

    @functools.wraps(command)
    def wrapper(*positional: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name, _, _ in COMMON_OPTIONS}
        args = CommonArgs(inputs=kwargs["inputs"], model=kwargs["model"], **values)
        args.validate()
        configure_logging(args.quiet)
        return command(*positional, args=args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + shared)  # type: ignore[attr-defined]
    return wrapper


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace("/", ",").split(","))
    except ValueError:
        raise UsageError(f"{option}: expected numbers, got {text!r}") from None


def recipe_from_flags(folder: ModelFolder, task: str, *, resize: int | None = None,
                      crop: float | None = None, mean: str | None = None,
                      std: str | None = None, color: str | None = None) -> PreprocessRecipe:
    """The preprocessing for ``folder`` (see :func:`preprocess_recipe`) with the
    flags given; ``--mean``/``--std`` are ``R,G,B`` or one value."""
    return preprocess_recipe(folder, task, resize=resize, crop=crop,
                             mean=_floats(mean, "--mean") if mean else None,
                             std=_floats(std, "--std") if std else None, color=color)


def resolve_model(path: Path | None, task: str) -> ModelFolder:
    return load_model_folder(path if path is not None else bundled_model(task))


class TableSink(RecordSink):
    """Human-readable rows on a terminal: the header once, then one line per input as
    its result arrives, cut to the terminal's width (never wrapped). The input column
    widens (in steps of 8 characters) to the longest input so far, up to half the
    width; a longer one is shortened from the left. :func:`run_command` gives it the
    progress bar's console when both show on one terminal, so that rows are printed
    above the bar."""

    def __init__(self, columns: list[str], row: Callable[[dict[str, Any]], list[str]]) -> None:
        self.columns, self.row = columns, row
        self.console = Console(highlight=False)
        self.width = 0
        self.rows = 0

    def widen(self, widest: int) -> None:
        """Make the input column fit inputs ``widest`` characters long (all the inputs'
        names, when they are known before the run), up to half the width."""
        self.width = min(max(self.width, widest, len(self.columns[0])),
                         max(12, self.console.width // 2))

    def write_record(self, record: dict[str, Any]) -> None:
        source, rest = self.row(record)
        limit = max(12, self.console.width // 2)
        if len(source) > self.width:  # wider in steps of 8, so that rows jump less
            self.width = min(-(-max(len(source), len(self.columns[0])) // 8) * 8, limit)
        if not self.rows:
            self._line(self.columns[0], Text(self.columns[1], style="bold"), "bold")
        self._line(source, Text.from_markup(rest), "")
        self.rows += 1

    def _line(self, source: str, rest: Text, style: str) -> None:
        if len(source) > self.width:
            source = "…" + source[len(source) - self.width + 1:]
        line = Text(source.ljust(self.width) + "  ", style=style) + rest
        line.truncate(self.console.width, overflow="ellipsis")
        self.console.print(line, no_wrap=True, overflow="ellipsis", soft_wrap=False)


class ProgressSink:
    """The progress bar: done, rate, time left (a sink, so it counts what was written)."""

    needs_images: ClassVar[bool] = False

    def __init__(self, progress: Progress, description: str, total: int | None) -> None:
        self.progress, self.done = progress, 0
        self.bar = progress.add_task(description, total=total, rate="")

    def write(self, result: Result) -> None:
        self.done += 1
        elapsed = self.progress.tasks[0].elapsed or 0
        rate = f"{self.done / elapsed:.1f}/s" if elapsed else ""
        self.progress.update(self.bar, completed=self.done, rate=rate)

    def close(self, complete: bool = True) -> None:
        """The bar is cleared when the run ends (the summary says the rest)."""


def same_terminal() -> bool:
    """Whether stdout and stderr are one terminal: rows on stdout must then be printed
    through the progress bar's console (on stderr), or the bar tangles with them."""
    try:
        out, err = sys.stdout.fileno(), sys.stderr.fileno()
        return (os.isatty(out) and os.isatty(err)
                and os.fstat(out).st_rdev == os.fstat(err).st_rdev)
    except (OSError, ValueError, AttributeError):
        return False


def stdout_is_pipe() -> bool:
    """Whether stdout is a pipe (``| jq``), not a terminal or a file."""
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


class _ConsoleLines(io.TextIOBase):
    """Lines printed through a console (the progress bar's, so that they go above it),
    as they are: not wrapped by Rich (the terminal wraps them), no markup."""

    def __init__(self, console: Console) -> None:
        self.console, self._partial = console, ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True,
                               emoji=False)
        return len(text)


class _CurrentStdout(io.TextIOBase):
    """``sys.stdout`` as it is at each write (once the reader of a pipe has gone, it is
    replaced by ``os.devnull``)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def error_cell(record: dict[str, Any]) -> str:
    """An error record's cell (Rich markup): its type, then its message without the
    input's name in front (the row starts with it)."""
    err = record["error"]
    message = str(err["message"]).removeprefix(f"{record['source']}: ")
    return f"[red]{escape(err['type'])}[/red]: {escape(message)}"


def source_cell(record: dict[str, Any]) -> str:
    frame = record.get("frame")
    return str(record["source"]) + (f" #{frame}" if frame is not None else "")


def check_folders(args: CommonArgs, folders: dict[str, Path | None]) -> None:
    """Refuse output folders (``{flag: folder}``, None: not asked for) that could
    replace an input (see :func:`check_save_dir`), or that a Ray job cannot write (its
    pixels stay on the actors)."""
    for flag_name, folder in folders.items():
        if folder is not None and args.ray is not None:
            raise UsageError(f"{flag_name} needs the pixels, which stay on the Ray actors: "
                             "with --ray, axrun writes records only (-o, the table)")
        if folder is not None:
            check_save_dir(folder, args.inputs, flag_name)


def open_sinks(args: CommonArgs, task: Task, task_name: str, table: TableSink,
               stdout: IO[str]) -> list[Sink]:
    """The record sinks the options name: ``-o FILE``, else JSON lines on ``stdout``
    (``-`` or a pipe), else the table (a terminal)."""
    top_k = task.top_k if isinstance(task, Classifier) else 0
    if args.output not in (None, "-"):
        return [open_file_sink(args.output, task_name, top_k, append=args.resume,
                               replace=args.overwrite, labels=getattr(task, "labels", ()))]
    if args.output is None and stdout_is_terminal():
        return [table]
    return [JsonLinesSink(stdout)]


COLOR_NAMES = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128),
               "gray": (128, 128, 128)}


def parse_color(text: str, flag: str) -> tuple[int, int, int]:
    """``white``, ``black``, ``grey``, ``R,G,B`` (0-255) or ``#RRGGBB`` → (R, G, B).

    Raises:
        UsageError: anything else, naming ``flag``.
    """
    value = text.strip().lower()
    if value in COLOR_NAMES:
        return COLOR_NAMES[value]
    try:
        if value.startswith("#") and len(value) == 7:
            rgb = tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))
        else:
            rgb = tuple(int(v) for v in value.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise UsageError(f"{flag} must be white, black, grey, R,G,B (0-255) or #RRGGBB, "
                         f"not {text!r}")
    return rgb[0], rgb[1], rgb[2]


def run_params(command: str, folder: ModelFolder, args: CommonArgs,
               **options: Any) -> dict[str, Any]:
    """What must not change between a run and its ``--resume``."""
    return {"command": command, "model": str(folder.root.resolve()),
            "model_fingerprint": model_fingerprint(folder), "vid_stride": args.vid_stride,
            "background": list(args.source_options().background), "decode": args.decode,
            "shard": args.shard,
            **{k: (list(v) if isinstance(v, tuple | frozenset) else v)
               for k, v in options.items()}}


def resume_state(args: CommonArgs, params: dict[str, Any], console: Console) -> \
        ResumeState | None:
    """Check/repair the output for ``--resume``; record the parameters of a new run."""
    if not args.jsonl_file:
        return None
    assert args.output is not None
    if not args.resume:
        write_params(Path(args.output), params)
        return None
    state = prepare_resume(Path(args.output), params)
    if not args.quiet and state.kept:
        notes = [f"{state.kept} input(s) already recorded"]
        if state.dropped_partial:
            notes.append("a partial last line was removed")
        if state.dropped_stale:
            notes.append(f"{state.dropped_stale} record(s) of changed files dropped")
        console.print("resuming: " + ", ".join(notes))
    return state


@dataclass(frozen=True)
class Survey:
    """What the inputs hold, when they can be listed before the run: ``total`` items
    for the progress bar (None: a video whose container does not count its frames),
    ``widest``: the longest input name the table shows (characters)."""

    total: int | None
    widest: int


def survey_inputs(args: CommonArgs, skip: Callable[[Any], bool] | None) -> Survey | None:
    """List the inputs ahead of the run (None with stdin, a URL, a camera, a list file
    or a pipe among them). Videos are counted from their container's frame count, not
    decoded."""
    if not countable(args.inputs):
        return None
    total: int | None = 0
    widest = 0
    for item in expand(args.inputs, args.source_options(), skip=skip, video=frame_indices):
        if item.frame is None and item.error is None and is_video(Path(item.source)):
            total = None  # a video whose container does not say how many frames it has
        elif total is not None:
            total += 1
        widest = max(widest, len(source_cell({"source": item.source, "frame": item.frame})))
    return Survey(total, widest)


def _restore_input_order(args: CommonArgs, state: ResumeState) -> None:
    """After a resumed run went through: records of inputs rerun because their files
    changed go back to their place in input order (the file is rewritten atomically)."""
    assert args.output is not None
    if not state.dropped_stale:
        return  # nothing was rerun out of order
    items = expand(args.inputs, args.source_options(), video=frame_indices)
    cwd = os.getcwd()
    reorder(Path(args.output), ((absolute(i.source, cwd), i.frame) for i in items))


@contextlib.contextmanager
def interruptible(run: Runner, console: Console, quiet: bool) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop taking input, finish in-flight frames. Second: abort."""
    hits = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal hits
        hits += 1
        if hits > 1:
            raise KeyboardInterrupt
        run.stop("interrupted")
        if not quiet:
            console.print("[yellow]stopping: finishing frames in flight "
                          "(press Ctrl-C again to abort)[/yellow]")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def print_summary(console: Console, summary: RunSummary, startup_s: float,
                  written: Sequence[str]) -> None:
    """What ran and how fast, in one line: the rate covers the run, from the first input
    read to the last record written; the start-up before it (``startup_s``: loading,
    opening the device) is said apart. Then a line naming every output written."""
    rate = summary.inputs / summary.wall_s if summary.wall_s else 0.0
    failed = ", ".join(f"{k} {v}" for k, v in sorted(summary.failures.items()))
    line = (f"{summary.inputs} input(s), {summary.failed} failed"
            + (f" ({failed})" if failed else "")
            + f" in {summary.wall_s:.2f} s: {rate:.1f}/s, not counting {startup_s:.2f} s of "
            "start-up")
    if summary.stopped:
        line += f"; stopped early ({summary.stopped})"
    console.print(line)
    if written:
        console.print("wrote " + "; ".join(written))


def close_all(sinks: Sequence[Sink], complete: bool) -> None:
    """Close every sink, even when one fails (each leaves its file valid); then raise
    the first failure as an :class:`OutputError`."""
    failure: OutputError | None = None
    for sink in sinks:
        try:
            sink.close(complete)
        except BrokenPipeError:
            pass  # the reader went away; nothing more can reach it
        except OutputError as exc:
            failure = failure or exc
        except OSError as exc:
            failure = failure or output_failed(sink, exc)
    if failure is not None:
        raise failure


class Runner(Protocol):
    """What runs the items into the sinks: :class:`axrun.run.Run` on this machine,
    :class:`axrun.cli.scale.RayRun` on a Ray cluster."""

    summary: RunSummary
    sinks: list[Sink]  # where each result goes, in this order

    def __call__(self, items: Iterable[Item]) -> RunSummary: ...

    def stop(self, reason: str = "interrupted") -> None: ...


RunnerFactory = Callable[[Sequence[Sink], RunPolicy, "ResumeState | None"], Runner]


def run_command(args: CommonArgs, runner: RunnerFactory, task: Task, task_name: str,
                table: TableSink, params: dict[str, Any],
                sinks_first: Sequence[Sink] = (), video: VideoReader = video_frames) -> int:
    """Run ``task`` over the inputs into the outputs the options name (``sinks_first``,
    such as annotated copies, get each result before the records) with the runner
    ``runner`` makes (:func:`local_runner`, or one on a Ray cluster, whose ``video``
    reader gives a video as one input); show progress and the summary. Returns the exit
    status (0 ok, 1 some failed, 130 interrupted)."""
    console = stderr_console()
    state = resume_state(args, params, console)
    stdin = sys.stdin.buffer if "-" in args.inputs else None
    # a Ray job reads videos whole: it drops the records of frames already done, and
    # stops after --limit records, itself
    options = args.source_options()
    whole = video is not video_frames
    skip = state.skip if state and not whole else None
    items = expand(args.inputs, dataclasses.replace(options, limit=None) if whole else options,
                   stdin, skip=skip, video=video)
    # The bar: on a terminal, unless stdout is a pipe (its reader, jq say, may print to
    # the same terminal, between the bar's redraws)
    show = not args.quiet and console.is_terminal and not stdout_is_pipe()
    survey = survey_inputs(args, state.skip if state else None) \
        if show or (args.output is None and stdout_is_terminal()) else None
    shared_terminal = show and same_terminal()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=True,
        # log lines written while the bar shows are printed above it
        redirect_stdout=False, redirect_stderr=show, disable=not show,
    )
    stdout: IO[str] = cast(IO[str], _CurrentStdout())
    if shared_terminal:  # records and rows go above the bar too
        table.console = progress.console
        stdout = cast(IO[str], _ConsoleLines(progress.console))
    if survey is not None:
        table.widen(survey.widest)
    # the runner first (a cluster that cannot be joined fails before any file is made)
    run = runner([], RunPolicy(args.max_errors, args.fail_fast), state)
    sinks = [*sinks_first, *open_sinks(args, task, task_name, table, stdout),
             ProgressSink(progress, task_name, survey.total if survey else None)]
    run.sinks = sinks
    complete = False
    failure: AxrunError | None = None
    startup_s = time.monotonic() - STARTED
    try:
        with interruptible(run, console, args.quiet), progress:
            summary = run(items)
        complete = summary.stopped is None
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, like other filters do.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more may reach the pipe
        summary = run.summary
        summary.stopped = "output closed"
    except AxrunError as exc:  # said after the summary of what was done and written
        summary, failure = run.summary, exc
        summary.stopped = "error"
    finally:
        close_all(sinks, complete)
    if complete and args.resume and state is not None and countable(args.inputs):
        _restore_input_order(args, state)
    if not args.quiet:
        print_summary(console, summary, startup_s, written(sinks))
    if failure is not None:
        raise failure
    if summary.stopped == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_INPUT_FAILED if summary.failed else EXIT_OK


def execute(args: CommonArgs, backend: str, folder: ModelFolder, task: Task, task_name: str,
            table: TableSink, params: dict[str, Any], sinks_first: Sequence[Sink] = (),
            options: dict[str, Any] | None = None) -> int:
    """Run the command on this machine's devices, or with ``--ray`` on a Ray cluster
    (``options``: the task's, given to each actor; see :func:`run_command`)."""
    if args.ray is not None:
        from axrun.cli.scale import ray_runner, whole_video

        runner = ray_runner(args, backend, folder, task_name, options or {})
        return run_command(args, runner, task, task_name, table, params, video=whole_video)
    with Engine(folder, backend=backend, config=args.engine_config()) as engine:
        return run_command(args, lambda sinks, policy, state: Run(engine, task, sinks, policy),
                           task, task_name, table, params, sinks_first)


def written(sinks: Sequence[Sink]) -> list[str]:
    """What each sink that writes files wrote, for the summary (``written()``, optional
    on a sink: a line such as ``results.jsonl (6 records)``, or None)."""
    lines = []
    for sink in sinks:
        say = getattr(sink, "written", None)
        line = say() if callable(say) else None
        if line:
            lines.append(line)
    return lines
