"""Where outputs go, and checks that keep them off inputs and earlier results.

:func:`inputs_root` and :func:`save_name` place annotated copies: a pure function of
the inputs as given, so a run, a resumed run and a rerun write the same names.


Made before the run starts (before any device is opened), from the inputs as given:

- :func:`check_results_file`: ``-o FILE`` must not be an input, and an existing
  non-empty results file is replaced only when asked (``--overwrite``) or continued
  (``--resume``);
- :func:`check_save_dir`: annotated copies must never land on an input: the save
  folder may hold no input named, and may not be inside an input folder (the run
  would scan its own outputs).

:class:`axrun.annotate.SaveDir` also refuses, at write time, to replace any file it
did not write (inputs read from stdin or a list are not known beforehand).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from axrun.errors import OutputError, UsageError
from axrun.sources import camera_source, is_list_file, is_url


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths are one file (device and inode); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _named_paths(specs: Sequence[str]) -> Iterator[Path]:
    """The files and folders the inputs name (globs expanded; stdin, URLs and cameras
    are not known here)."""
    for spec in specs:
        if spec == "-" or is_url(spec):
            continue
        if os.path.lexists(spec):
            yield Path(spec)
        elif glob.has_magic(spec):
            yield from (Path(m) for m in glob.iglob(spec, recursive=True))


def inputs_root(specs: Sequence[str]) -> str:
    """The folder annotated copies are named relative to: the deepest folder holding
    every input named (a folder input counts as itself, a file or glob as its
    folder; stdin and list files as the working folder; URLs and cameras not at all).
    """
    folders = []
    for spec in specs:
        if is_url(spec) or camera_source(spec) is not None:
            continue
        if spec == "-" or is_list_file(spec):
            folders.append(os.getcwd())
        elif glob.has_magic(spec):
            head = spec[: min(spec.index(c) for c in "*?[" if c in spec)]
            folders.append(os.path.abspath(os.path.dirname(head) or "."))
        elif os.path.isdir(spec):
            folders.append(os.path.abspath(spec))
        else:
            folders.append(os.path.dirname(os.path.abspath(spec)))
    return os.path.commonpath(folders) if folders else os.getcwd()


def save_name(source: str, root: str) -> Path:
    """Where the annotated copy of ``source`` goes under the save folder: its path
    relative to ``root``; an input outside ``root`` (from stdin, say) under its
    absolute path's parts; a URL under its host and path; a camera as ``cameraN``."""
    if is_url(source):
        scheme, _, rest = source.partition("://")
        return Path(rest.strip("/") or scheme)
    if camera_source(source) is not None:
        return Path(f"camera{Path(source).name.removeprefix('video')}")
    path = os.path.abspath(source)
    rel = os.path.relpath(path, root)
    return Path(path.lstrip(os.sep) if rel.startswith(os.pardir) else rel)


COCO_SUFFIX = ".coco.json"


def coco_index_path(path: str) -> str:
    """The image index written beside COCO results ``NAME.coco.json``:
    ``NAME.images.json``."""
    return path[: -len(COCO_SUFFIX)] + ".images.json"


def check_results_file(path: str, specs: Sequence[str], *, overwrite: bool,
                       resume: bool) -> None:
    """Refuse ``-o path`` when it is one of the inputs, or when it already holds
    results and neither ``overwrite`` nor ``resume`` is set (for COCO results, the same
    for the image index beside them).

    Raises:
        UsageError: saying which, and what to do.
    """
    if path == "-":
        return
    if path.lower().endswith(COCO_SUFFIX):
        _check_results_file(coco_index_path(path), specs, overwrite=overwrite, resume=resume)
    _check_results_file(path, specs, overwrite=overwrite, resume=resume)


def _check_results_file(path: str, specs: Sequence[str], *, overwrite: bool,
                        resume: bool) -> None:
    target = Path(path)
    for named in _named_paths(specs):
        if named.is_file() and same_file(named, target):
            raise UsageError(f"results file {path} is the input {named}: choose another "
                             "output file")
    try:
        size = target.stat().st_size if target.is_file() else 0
    except OSError:
        size = 0
    if size and not (overwrite or resume):
        resume_hint = ", --resume to continue it" if path.endswith((".jsonl", ".ndjson")) \
            else ""
        raise UsageError(f"results file {path} already exists ({size} bytes): give "
                         f"--overwrite to replace it{resume_hint}, or another file")


def check_save_dir(save_dir: Path, specs: Sequence[str], flag: str = "--save-dir") -> None:
    """Refuse an output folder (``--save-dir``, ``--save-txt``, ``--save-crop``: ``flag``)
    whose files could replace an input.

    Raises:
        UsageError: naming the input concerned.
    """
    for named in _named_paths(specs):
        if _inside(named, save_dir):
            raise UsageError(f"{flag} {save_dir} holds the input {named}: a file written "
                             "there could replace it; choose a folder that holds no input")
        if named.is_dir() and _inside(save_dir, named):
            raise UsageError(
                f"{flag} {save_dir} is inside the input folder {named}: the files written "
                "there would replace or be scanned as inputs; choose a folder outside it")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (which may not exist yet) is inside ``folder``."""
    try:
        real_path, real_folder = path.resolve(), folder.resolve()
    except (OSError, RuntimeError):
        return False
    return real_folder in real_path.parents or real_path == real_folder


INDEX_NAME = ".axrun-written"  # hidden, and not a .txt that label tools would read
LEGACY_INDEX = "axrun-annotated.txt"  # what save folders of earlier versions hold


class OutputFolder:
    """A folder of files named after the inputs (annotated copies, label files, crops),
    with the rule that keeps them off everything else: every file written is listed in
    ``<root>/.axrun-written`` before it is written, and an existing file that is not
    listed there (an input, a user's file) is never replaced. Two inputs of one run that
    would get the same name are refused too (``a.jpg`` and ``a.png`` both labelled in
    ``a.txt``), and the later one is not written.

    ``what`` names the folder in messages (``save folder``, ``labels folder``...).
    :attr:`files` counts the files written in this run.
    """

    def __init__(self, root: Path, what: str) -> None:
        self.root, self.what = root, what
        self.files = 0
        self._index: BinaryIO | None = None  # opened with the first file written
        self._claimed: dict[bytes, str] = {}  # names written in this run → their input
        try:
            root.mkdir(parents=True, exist_ok=True)
            self._ours = {line for name in (INDEX_NAME, LEGACY_INDEX)
                          if (root / name).exists()
                          for line in (root / name).read_bytes().splitlines()}
        except OSError as exc:
            raise OutputError(f"{what} {root}: cannot create ({exc.strerror})") from exc

    def claim(self, rel: Path, source: str, *, also: Sequence[Path] = ()) -> Path:
        """The path for ``rel`` (relative to the root), the file made from ``source``,
        once it is sure that nothing but a file axrun wrote is there, listed as ours
        before the caller writes it. ``also``: names that file may pass through (a
        video's ``.partial.mp4``), checked and listed the same way.

        Raises:
            UsageError: a file that is not axrun's is there, or another input of this
                run was written under the same name.
            OutputError: the index cannot be written.
        """
        for name in (rel, *also):
            key = os.fsencode(name)
            existing = self.root / name
            earlier = self._claimed.get(key)
            if earlier is not None and earlier != source:
                raise UsageError(f"{self.what} {self.root}: {earlier} and {source} would "
                                 f"both be written as {existing}; give them different "
                                 "names, or write them in separate runs")
            if os.path.lexists(existing) and (key not in self._ours or same_file(
                    existing, source)):
                raise UsageError(f"{self.what} {self.root}: {existing} exists and is not a "
                                 f"file axrun wrote (what it made from {source} would "
                                 "replace it); choose another folder")
            self._claimed[key] = source
            if key not in self._ours:
                self._ours.add(key)
                try:
                    if self._index is None:
                        self._index = open(self.root / INDEX_NAME, "ab", buffering=0)  # noqa: SIM115
                    self._index.write(key + b"\n")
                except OSError as exc:
                    raise OutputError(f"{self.root / INDEX_NAME}: cannot write "
                                      f"({exc.strerror})") from exc
        self.files += 1
        return self.root / rel

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
