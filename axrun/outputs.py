"""Checks that keep a run's outputs off its inputs and off earlier results.

Made before the run starts (before any device is opened), from the inputs as given:

- :func:`check_results_file`: ``-o FILE`` must not be an input, and an existing
  non-empty results file is replaced only when asked (``--overwrite``) or continued
  (``--resume``);
- :func:`check_save_dir`: annotated copies must never land on an input: the save
  folder may not be a folder that is scanned for inputs (or inside one: the run would
  scan its own outputs), nor the folder of an input file named explicitly.

:class:`axrun.annotate.SaveDir` also refuses, at write time, a target that is the
input itself (inputs read from stdin or a list are not known beforehand).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from axrun.errors import UsageError


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _named_paths(specs: Sequence[str]) -> Iterator[Path]:
    """The files and folders the inputs name (globs expanded; stdin, URLs and cameras
    are not known here)."""
    for spec in specs:
        if spec == "-" or "://" in spec:
            continue
        if os.path.lexists(spec):
            yield Path(spec)
        elif glob.has_magic(spec):
            yield from (Path(m) for m in glob.iglob(spec, recursive=True))


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
        if named.is_file() and _same(named, target):
            raise UsageError(f"-o {path} is the input {named}: choose another output file")
    try:
        size = target.stat().st_size if target.is_file() else 0
    except OSError:
        size = 0
    if size and not (overwrite or resume):
        raise UsageError(f"-o {path} already exists ({size} bytes): give --overwrite to "
                         "replace it, --resume to continue it, or another file")


def check_save_dir(save_dir: Path, specs: Sequence[str]) -> None:
    """Refuse a ``--save-dir`` whose annotated copies could replace an input.

    Raises:
        UsageError: naming the input concerned.
    """
    for named in _named_paths(specs):
        if named.is_dir():
            if _same(named, save_dir) or _inside(save_dir, named):
                raise UsageError(
                    f"--save-dir {save_dir} is inside the input folder {named}: its "
                    "annotated copies would replace or be scanned as inputs; choose a "
                    "folder outside it")
        elif _same(named.parent if str(named.parent) else Path("."), save_dir):
            raise UsageError(f"--save-dir {save_dir} holds the input {named}: its annotated "
                             "copy would replace it; choose another folder")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (which may not exist yet) is inside ``folder``."""
    try:
        real_path, real_folder = path.resolve(), folder.resolve()
    except (OSError, RuntimeError):
        return False
    return real_folder in real_path.parents or real_path == real_folder
