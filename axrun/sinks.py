"""Sinks: where results go, each a peer of the others — record files (JSON lines, one
JSON array, CSV), the terminal table, annotated images and videos
(:class:`axrun.annotate.SaveDir`).

Every sink receives each :class:`~axrun.results.Result` in input order; record writers
write :meth:`Result.to_dict`, the record documented in :mod:`axrun.results`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

from axrun.errors import OutputError, ParameterError
from axrun.outputs import COCO_SUFFIX, coco_index_path
from axrun.results import Result

FORMATS = ("jsonl", "json", "csv", "coco")


class Sink(Protocol):
    """Receives results in input order; ``close`` leaves complete, valid files
    (``complete`` False: the run stopped before the end of its input).
    ``needs_images``: the sink draws on the decoded pixels (the engine keeps them)."""

    needs_images: ClassVar[bool]

    def write(self, result: Result) -> None: ...

    def close(self, complete: bool = True) -> None: ...


class RecordSink:
    """Base of the sinks that write records: :meth:`write_record` per result.
    ``path``: the file written (None: stdout, the terminal)."""

    needs_images: ClassVar[bool] = False
    path: str | None = None
    appended = False  # --resume: the records add to the file's
    records = 0

    def write(self, result: Result) -> None:
        self.write_record(result.to_dict())
        self.records += 1

    def written(self) -> str | None:
        """What was written, for the run's summary: ``results.jsonl (6 records)``."""
        if self.path is None:
            return None
        return f"{self.path} ({'+' if self.appended else ''}{self.records} record(s))"

    def write_record(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self, complete: bool = True) -> None:
        """Nothing to finish by default."""


def sink_name(sink: Sink) -> str:
    """What a sink writes to, for messages: its file's name, or ``stdout``."""
    name = getattr(getattr(sink, "stream", None), "name", None)
    return "stdout" if name in (None, "<stdout>") else str(name)


def output_failed(sink: Sink, exc: OSError) -> OutputError:
    """The error for a sink whose file cannot be written."""
    return OutputError(f"{sink_name(sink)}: cannot write ({exc.strerror or exc})")


def dumps_record(record: dict[str, Any]) -> str:
    """One record as the JSON sinks write it (one line, UTF-8 kept)."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


class JsonLinesSink(RecordSink):
    """One JSON object per line, flushed per record (nothing lost on a crash)."""

    def __init__(self, stream: IO[str], owned: bool = False) -> None:
        self.stream, self.owned = stream, owned

    def write_record(self, record: dict[str, Any]) -> None:
        self.stream.write(dumps_record(record) + "\n")
        self.stream.flush()

    def close(self, complete: bool = True) -> None:
        if self.owned:
            self.stream.close()


class JsonArraySink(RecordSink):
    """One JSON array; the closing bracket is written by ``close`` (also on interrupt)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream, self.count = stream, 0
        stream.write("[")

    def write_record(self, record: dict[str, Any]) -> None:
        self.stream.write(("," if self.count else "") + "\n  " + dumps_record(record))
        self.stream.flush()
        self.count += 1

    def close(self, complete: bool = True) -> None:
        self.stream.write("\n]\n" if self.count else "]\n")
        self.stream.close()


class CsvSink(RecordSink):
    """Flat rows: classify → one row per input (top-k as columns); detect → one row per
    detection (an input without detections, or failed, still gets one row)."""

    def __init__(self, stream: IO[str], task: str, top_k: int) -> None:
        self.stream, self.task = stream, task
        base = ["source", "frame", "time_s", "width", "height", "error_type", "error_message"]
        if task == "classify":
            extra = [f"{k}_{r}" for r in range(1, top_k + 1) for k in ("id", "label", "score")]
        else:
            extra = ["id", "label", "score", "x1", "y1", "x2", "y2"]
        self.columns = base + extra + ["source_b64"]
        self.writer = csv.writer(stream)
        self.writer.writerow(self.columns)

    def write_record(self, record: dict[str, Any]) -> None:
        err = record.get("error") or {}
        base = [record["source"], record.get("frame"), record.get("time_s"),
                record.get("width"), record.get("height"), err.get("type"), err.get("message")]
        base = ["" if v is None else v for v in base]
        raw = [record.get("source_b64", "")]
        if self.task == "classify":
            row = list(base)
            for entry in record.get("top", []):
                row += [entry["id"], entry["label"], entry["score"]]
            self.writer.writerow(row + [""] * (len(self.columns) - 1 - len(row)) + raw)
        else:
            dets = record.get("detections") or [None]
            for d in dets:
                self.writer.writerow(base + ([d["id"], d["label"], d["score"], *d["box"]]
                                             if d else [""] * 7) + raw)
        self.stream.flush()

    def close(self, complete: bool = True) -> None:
        self.stream.close()


def is_stream(path: str) -> bool:
    """Whether ``-o path`` is a device or a pipe (``/dev/null``, ``/dev/stderr``, a
    FIFO): written through as JSON lines, never renamed over, nothing written beside
    it, not resumable."""
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def output_format(path: str) -> str:
    """``jsonl``, ``json``, ``csv`` or ``coco`` (``NAME.coco.json``: COCO results, see
    :class:`axrun.datasets.CocoResults`) from an output path's suffix."""
    if path.lower().endswith(COCO_SUFFIX):
        return "coco"
    if is_stream(path):
        return "jsonl"
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in FORMATS:
        return suffix
    raise ParameterError("output", f"{path}: unknown output format; use .jsonl, .json, "
                         ".csv or .coco.json (or - for JSON lines on stdout)")


class _Replacing(io.TextIOWrapper):
    """A text file written under ``<name>.partial`` and renamed over ``target`` when
    closed: the file it replaces is never truncated or written through. If ``target``
    is a link to another file (an input, say), the link is replaced, not that file."""

    def __init__(self, target: Path, newline: str | None) -> None:
        self._target = target
        self._partial = target.with_name(target.name + ".partial")
        super().__init__(open(self._partial, "wb"), encoding="utf-8",  # noqa: SIM115
                         newline=newline)

    def close(self) -> None:
        if not self.closed:
            super().close()
            os.replace(self._partial, self._target)


def _open_text(path: str, *, append: bool, replace: bool, newline: str | None) -> IO[str]:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if replace and not append and not is_stream(path):
            return _Replacing(Path(path), newline)
        return open(path, "a" if append else "w", encoding="utf-8",
                    newline=newline)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from exc


def open_file_sink(path: str, task: str, top_k: int = 0, append: bool = False,
                   replace: bool = False, labels: Sequence[str] = ()) -> Sink:
    """A writer for ``-o PATH`` (``-`` = JSON lines on stdout). ``append`` continues
    the file (``--resume``); ``replace`` writes a new one beside it and renames it over
    the old when closed (``--overwrite``). ``labels``: the model's class names, for the
    categories of COCO results.

    Raises:
        ParameterError: an unknown format, ``append`` to anything but JSON lines, COCO
            results of anything but detection. OutputError: the file cannot be written.
    """
    if path == "-":
        return JsonLinesSink(sys.stdout)
    fmt = output_format(path)
    if append and fmt != "jsonl":
        raise ParameterError("append", "needs a .jsonl output (results.jsonl)")
    if fmt == "coco":
        if task != "detect":
            raise ParameterError("output", f"{path}: COCO results hold boxes: only "
                                 "detection writes them (use .jsonl, .json or .csv)")
        from axrun.datasets import CocoResults

        return CocoResults(_open_text(path, append=False, replace=replace, newline=None),
                           _open_text(coco_index_path(path), append=False, replace=replace,
                                      newline=None), path, labels)
    stream = _open_text(path, append=append, replace=replace,
                        newline="" if fmt == "csv" else None)
    sink: RecordSink
    if fmt == "jsonl":
        sink = JsonLinesSink(stream, owned=True)
    elif fmt == "json":
        sink = JsonArraySink(stream)
    else:
        sink = CsvSink(stream, task, top_k)
    sink.path, sink.appended = path, append
    return sink


def stdout_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False
