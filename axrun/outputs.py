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

from axrun.errors import InputError, OutputError, UsageError
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
    _check_results_file(path, specs, overwrite=overwrite, resume=resume)
    if path.lower().endswith(COCO_SUFFIX):
        _check_results_file(coco_index_path(path), specs, overwrite=overwrite, resume=resume)


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


# What annotated copies and crops keep their input's format for (OpenCV encodes these).
ENCODABLE = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

INDEX_NAME = ".axrun-written"  # hidden, and not a .txt that label tools would read
LEGACY_INDEX = "axrun-annotated.txt"  # what save folders of earlier versions hold


def item_key(source: str, frame: int | None = None) -> str:
    """What an output file is made from: an input, or one frame or page of it."""
    return source if frame is None else f"{source}\x1f{frame}"


def _input_of(key: bytes) -> str:
    """The input an :func:`item_key` (as listed) names, without its frame or page."""
    return os.fsdecode(key).split("\x1f")[0]


class OutputFolder:
    """A folder of files named after the inputs (annotated copies, label files, crops),
    and the rules that keep it true to the records:

    - every file is listed in ``<root>/.axrun-written`` with the input (or frame, page)
      it was made from, before it is written; an existing file that is not listed
      there (an input, a user's file) is never replaced (:class:`UsageError`);
    - a file an earlier run made from another input is not replaced either, unless
      ``replace_others`` (``--overwrite``) says so (:class:`UsageError`); then every
      file that run made from that input is deleted (the folder must not mix them);
    - two inputs of one run that would get the same name (``a.jpg`` and ``a.png``
      labelled as ``a.txt``): the later one gets an error record (:class:`InputError`,
      kind ``output``) and its file is not written;
    - :meth:`settle`, once an input is done: the files an earlier run made from it that
      this run did not write again (crops of boxes no longer found, the label file of an
      input that now fails) are deleted.

    ``what`` names the folder in messages (``save folder``, ``labels folder``...).
    :attr:`files` counts the files written in this run.
    """

    def __init__(self, root: Path, what: str, replace_others: bool = False) -> None:
        self.root, self.what, self.replace_others = root, what, replace_others
        self.files = 0
        self._index: BinaryIO | None = None  # opened with the first file written
        self._claimed: dict[bytes, bytes] = {}  # names written in this run → their item
        self._owner: dict[bytes, bytes | None] = {}  # names listed → item (None: unknown)
        self._earlier: dict[bytes, set[bytes]] = {}  # item → names of earlier runs
        try:
            root.mkdir(parents=True, exist_ok=True)
            if (root / LEGACY_INDEX).exists():
                self._owner.update(dict.fromkeys(
                    (root / LEGACY_INDEX).read_bytes().splitlines()))
            if (root / INDEX_NAME).exists():
                fields = (root / INDEX_NAME).read_bytes().split(b"\0")
                for name, key in zip(fields[0:-1:2], fields[1::2], strict=False):
                    self._owner[name] = key
                    self._earlier.setdefault(key, set()).add(name)
        except OSError as exc:
            raise OutputError(f"{what} {root}: cannot create ({exc.strerror})") from exc

    def claim(self, rel: Path, item: str, source: str, *,
              also: Sequence[Path] = ()) -> Path:
        """The path for ``rel`` (relative to the root), a file made from ``item`` (see
        :func:`item_key`) of the input ``source``, listed as such before the caller
        writes it. ``also``: names that file may pass through (a video's
        ``.partial.mp4``), checked and listed the same way.

        Raises:
            UsageError: a file that is not axrun's is there, or one an earlier run made
                from another input. InputError: another input of this run was written
                under the same name. OutputError: the index cannot be written.
        """
        key = os.fsencode(item)
        for name in (rel, *also):
            path = os.fsencode(name)
            existing = self.root / name
            earlier = self._claimed.get(path)
            if earlier is not None and earlier != key:
                raise InputError(f"{self.what} {self.root}: {existing} was written for "
                                 f"{_input_of(earlier)} in this run; "
                                 f"{source} is not written there", kind="output")
            if os.path.lexists(existing):
                if path not in self._owner or same_file(existing, source):
                    raise UsageError(f"{self.what} {self.root}: {existing} exists and is not "
                                     f"a file axrun wrote (what it made from {source} would "
                                     "replace it); choose another folder")
                owner = self._owner[path]
                if owner not in (None, key) and earlier is None and self.replace_others:
                    self._settle(owner)  # that input's other files go with it
                elif owner not in (None, key) and earlier is None:
                    raise UsageError(
                        f"{self.what} {self.root}: {existing} was made from "
                        f"{_input_of(owner)} by an earlier run (what "
                        f"axrun made from {source} would replace it); choose another "
                        "folder, or give --overwrite to replace such files")
            self._claimed[path] = key
            if self._owner.get(path, b"") != key:
                self._owner[path] = key
                try:
                    if self._index is None:
                        self._index = open(self.root / INDEX_NAME, "ab", buffering=0)  # noqa: SIM115
                    self._index.write(path + b"\0" + key + b"\0")
                except OSError as exc:
                    raise OutputError(f"{self.root / INDEX_NAME}: cannot write "
                                      f"({exc.strerror})") from exc
        self.files += 1
        return self.root / rel

    def settle(self, item: str) -> None:
        """``item`` is done: delete what earlier runs made from it that this run did not
        make again (only files still listed as made from it).

        Raises:
            OutputError: such a file cannot be deleted.
        """
        self._settle(os.fsencode(item))

    def _settle(self, key: bytes) -> None:
        for name in self._earlier.pop(key, ()):
            if self._claimed.get(name) is None and self._owner.get(name) == key:
                try:
                    (self.root / os.fsdecode(name)).unlink(missing_ok=True)
                except OSError as exc:
                    raise OutputError(f"{self.root / os.fsdecode(name)}: cannot delete an "
                                      f"out-of-date file ({exc.strerror})") from exc

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
