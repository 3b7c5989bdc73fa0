"""Outputs: records (one per input, versioned) and the writers that serialize them.

Record layout version :data:`RECORD_VERSION` (documented in the README):

    {"v": 1, "source": "a.jpg", "frame": null, "time_s": null, "width": 640, "height": 480,
     "top": [{"id": 967, "label": "espresso", "score": 0.91}, ...]}              # classify
    {..., "detections": [{"id": 0, "label": "person", "score": 0.88,
                          "box": [x1, y1, x2, y2]}]}                             # detect
    {"v": 1, "source": "b.jpg", "frame": null, "time_s": null,
     "error": {"type": "decode", "message": "..."}}                              # failure
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import IO, Any, Protocol

from axrun.engine.pipeline import FrameResult
from axrun.errors import OutputError, UsageError
from axrun.tasks.classify import Classification
from axrun.tasks.detect import Detections

RECORD_VERSION = 1
FORMATS = ("jsonl", "json", "csv")


def source_fields(source: str) -> dict[str, str]:
    """``source`` for a record. A file name that is not UTF-8 (bytes decoded with
    ``surrogateescape``, as Python's ``os`` does) gets the name with U+FFFD for each
    undecodable byte, for reading, and ``source_b64``: the exact bytes, base64."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(source)
        return {"source": raw.decode("utf-8", "replace"),
                "source_b64": base64.b64encode(raw).decode("ascii")}
    return {"source": source}


def record_source(record: dict[str, Any]) -> str:
    """The input a record is about, exactly (the inverse of :func:`source_fields`).

    Raises:
        KeyError, ValueError: not a record axrun wrote.
    """
    if "source_b64" in record:
        return os.fsdecode(base64.b64decode(record["source_b64"], validate=True))
    source = record["source"]
    if not isinstance(source, str):
        raise ValueError("source is not a string")
    return source


def _text(text: str) -> str:
    """``text`` as valid UTF-8 (a file name in a message may hold undecodable bytes)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def to_record(result: FrameResult) -> dict[str, Any]:
    """The JSON-ready record of one input (see the module docstring)."""
    item = result.item
    record: dict[str, Any] = {"v": RECORD_VERSION, **source_fields(item.source),
                              "frame": item.frame, "time_s": item.time_s,
                              "file_size": item.size, "file_mtime": item.mtime}
    if result.error is not None:
        record["error"] = {"type": result.error.kind, "message": _text(str(result.error))}
        return record
    if result.meta is not None:
        record["width"], record["height"] = result.meta.width, result.meta.height
    value = result.result
    if isinstance(value, Classification):
        record["top"] = [
            {"id": int(i), "label": label, "score": round(float(s), 5)}
            for i, label, s in zip(value.class_ids, value.labels, value.scores, strict=True)
        ]
    elif isinstance(value, Detections):
        record["detections"] = [
            {"id": int(c), "label": label, "score": round(float(s), 5),
             "box": [round(float(v), 2) for v in box]}
            for box, s, c, label in zip(value.xyxy, value.confidence, value.class_id,
                                        value.labels, strict=True)
        ]
    return record


class Sink(Protocol):
    """Receives records in input order; ``close`` leaves a complete, valid file."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


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


class JsonLinesSink:
    """One JSON object per line, flushed per record (nothing lost on a crash)."""

    def __init__(self, stream: IO[str], owned: bool = False) -> None:
        self.stream, self.owned = stream, owned

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(dumps_record(record) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.owned:
            self.stream.close()


class JsonArraySink:
    """One JSON array; the closing bracket is written by ``close`` (also on interrupt)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream, self.count = stream, 0
        stream.write("[")

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(("," if self.count else "") + "\n  " + dumps_record(record))
        self.stream.flush()
        self.count += 1

    def close(self) -> None:
        self.stream.write("\n]\n" if self.count else "]\n")
        self.stream.close()


class CsvSink:
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

    def write(self, record: dict[str, Any]) -> None:
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

    def close(self) -> None:
        self.stream.close()


def output_format(path: str) -> str:
    """``jsonl``, ``json`` or ``csv`` from an output path's suffix."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in FORMATS:
        return suffix
    raise UsageError(f"-o {path}: unknown output format; use .jsonl, .json or .csv (or - for "
                     "JSON lines on stdout)")


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


def open_file_sink(path: str, task: str, top_k: int, append: bool = False,
                   replace: bool = False) -> Sink:
    """A writer for ``-o PATH`` (``-`` = JSON lines on stdout). ``append`` continues
    the file (``--resume``); ``replace`` writes a new one beside it and renames it over
    the old when closed (``--overwrite``)."""
    if path == "-":
        return JsonLinesSink(sys.stdout)
    fmt = output_format(path)
    if append and fmt != "jsonl":
        raise UsageError("--resume needs a .jsonl output (-o results.jsonl)")
    newline = "" if fmt == "csv" else None
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if replace and not append:
            stream: IO[str] = _Replacing(Path(path), newline)
        else:
            stream = open(path, "a" if append else "w", encoding="utf-8",  # noqa: SIM115
                          newline=newline)
    except OSError as exc:
        raise OutputError(f"-o {path}: cannot write ({exc.strerror})") from exc
    if fmt == "jsonl":
        return JsonLinesSink(stream, owned=True)
    if fmt == "json":
        return JsonArraySink(stream)
    return CsvSink(stream, task, top_k)


def stdout_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False
