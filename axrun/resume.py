"""``--resume``: continue an interrupted run into the same JSON-lines file.

A run writing ``results.jsonl`` also writes ``results.jsonl.run.json``: the command,
the model's fingerprint and every option that changes results. Resuming checks those
are unchanged, repairs the file (a partial last line left by a killed process is cut;
records of inputs whose file has changed since are dropped), and skips every input
already recorded with the same path, frame, size and modification time. Records are
flushed line by line, so the file always holds a prefix of the run, in input order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axrun.errors import UsageError
from axrun.files import atomic_write
from axrun.modelfolder import ModelFolder
from axrun.results import record_source, source_fields
from axrun.sinks import dumps_record
from axrun.sources import Item, file_identity, is_url

Key = tuple[str, int | None]  # an input's absolute path (or URL) and frame
CWD = "cwd"  # the key, in the parameters file, of the recording run's working folder


def params_path(output: Path) -> Path:
    """Where a run's parameters are kept, beside its output."""
    return output.with_name(output.name + ".run.json")


def model_fingerprint(folder: ModelFolder) -> str:
    """Changes when any file of the model folder changes (names, sizes, times, manifest)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.root.iterdir() if p.is_file()):
        st = path.stat()
        h.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    h.update((folder.root / "manifest.json").read_bytes())
    return h.hexdigest()[:16]


def write_params(output: Path, params: dict[str, Any]) -> None:
    """Record a run's parameters beside its output (atomically), with the working
    folder its relative paths are relative to (``cwd``, not compared on resume)."""
    data = {**params, CWD: os.getcwd()}
    atomic_write(params_path(output), (json.dumps(data, indent=2) + "\n").encode())


def absolute(source: str, base: str) -> str:
    """Which file a recorded ``source`` is, as an absolute path (relative paths are
    taken from ``base``, the recording run's working folder); URLs as they are."""
    if is_url(source):
        return source
    return os.path.normpath(os.path.join(base, source))


@dataclass
class ResumeState:
    """What an earlier run already recorded (and what the repair did)."""

    done: set[Key] = field(default_factory=set)
    kept: int = 0
    dropped_partial: bool = False
    dropped_stale: int = 0
    here: str = field(default_factory=os.getcwd)  # the working folder of this run

    def skip(self, item: Item) -> bool:
        """Whether ``item`` was recorded already (by absolute path and frame: the
        working folder may differ from the recording run's)."""
        return (absolute(item.source, self.here), item.frame) in self.done


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k}={old.get(k)!r} before, {new.get(k)!r} now"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def prepare(output: Path, params: dict[str, Any]) -> ResumeState:
    """Check, repair and read ``output`` for resuming; record ``params`` for a new file.

    Raises:
        UsageError: the parameters file is missing or differs, or a line other than
            the last is not valid JSON (the file was not written by axrun alone).
    """
    if not output.exists() or output.stat().st_size == 0:
        write_params(output, params)
        return ResumeState()
    side = params_path(output)
    try:
        recorded = json.loads(side.read_text(encoding="utf-8"))
        base = str(recorded.pop(CWD, os.getcwd()))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise UsageError(f"--resume: {side} is missing or unreadable, so {output} cannot be "
                         "checked against this run; run without --resume to start over") from None
    diff = _differences(recorded, params)
    if diff:
        raise UsageError(f"--resume: {output} was written with other settings ("
                         + "; ".join(diff) + "); use the same ones, or run without --resume")
    data = output.read_bytes()
    moved = not os.path.samefile(base, ".") if os.path.isdir(base) else True
    end = data.rfind(b"\n") + 1
    state = ResumeState(dropped_partial=end < len(data))
    kept: list[bytes] = []
    identities: dict[str, tuple[int | None, float | None]] = {}
    for number, line in enumerate(data[:end].splitlines(keepends=True), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key: Key = (absolute(record_source(record), base), record.get("frame"))
            recorded_id = (record.get("file_size"), record.get("file_mtime"))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError,
                AttributeError):
            raise UsageError(f"--resume: {output} line {number} is not an axrun record; "
                             "cannot resume safely") from None
        if key[0] not in identities:
            identities[key[0]] = file_identity(key[0])
        if identities[key[0]] != recorded_id:
            state.dropped_stale += 1  # the file changed since: run it again
            continue
        if key in state.done:
            continue  # never keep a duplicate
        state.done.add(key)
        kept.append(_relative_to_here(record, key[0]) if moved else line)
    state.kept = len(kept)
    if (moved or state.dropped_partial or state.dropped_stale
            or len(kept) != data[:end].count(b"\n")):
        atomic_write(output, b"".join(kept))
    if moved:  # the records now say where their inputs are from here
        write_params(output, params)
    return state


def _relative_to_here(record: dict[str, Any], path: str) -> bytes:
    """A record whose relative ``source`` is rewritten relative to the current working
    folder (a resume from another folder), as a JSON line."""
    if not is_url(path) and not os.path.isabs(record_source(record)):
        for k in ("source", "source_b64"):
            record.pop(k, None)
        record = {"v": record.pop("v"), **source_fields(os.path.relpath(path)), **record}
    return (dumps_record(record) + "\n").encode()


def reorder(output: Path, order: Iterable[Key]) -> bool:
    """Put the records of ``output`` in input order (``order``: the inputs' keys, as
    absolute paths from the working folder), rewriting it atomically; records of
    inputs not in ``order`` keep their place after the others. Returns whether the
    file changed. A resumed run appends the inputs it reran (their files had changed)
    after those recorded before: this puts them back in their place.
    """
    index: dict[Key, int] = {}
    for key in order:
        index.setdefault(key, len(index))
    data = output.read_bytes()
    lines = data.splitlines(keepends=True)
    cwd = os.getcwd()

    def position(line: bytes) -> int:
        try:
            record = json.loads(line)
            key = (absolute(record_source(record), cwd), record.get("frame"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return len(index)
        return index.get(key, len(index))

    ordered = sorted(lines, key=position)  # stable: ties keep their order
    if ordered == lines:
        return False
    atomic_write(output, b"".join(ordered))
    return True
