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

from axrun.errors import UsageError
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


def check_results_file(path: str, specs: Sequence[str], *, overwrite: bool,
                       resume: bool) -> None:
    """Refuse ``-o path`` when it is one of the inputs, or when it already holds
    results and neither ``overwrite`` nor ``resume`` is set.

    Raises:
        UsageError: saying which, and what to do.
    """
    if path == "-":
        return
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
        raise UsageError(f"results file {path} already exists ({size} bytes): give "
                         "--overwrite to replace it, --resume to continue it, or another file")


def check_save_dir(save_dir: Path, specs: Sequence[str]) -> None:
    """Refuse a ``--save-dir`` whose annotated copies could replace an input.

    Raises:
        UsageError: naming the input concerned.
    """
    for named in _named_paths(specs):
        if _inside(named, save_dir):
            raise UsageError(f"save folder {save_dir} holds the input {named}: an annotated "
                             "copy could replace it; choose a folder that holds no input")
        if named.is_dir() and _inside(save_dir, named):
            raise UsageError(
                f"save folder {save_dir} is inside the input folder {named}: its "
                "annotated copies would replace or be scanned as inputs; choose a "
                "folder outside it")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (which may not exist yet) is inside ``folder``."""
    try:
        real_path, real_folder = path.resolve(), folder.resolve()
    except (OSError, RuntimeError):
        return False
    return real_folder in real_path.parents or real_path == real_folder
