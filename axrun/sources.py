"""Inputs: what to run on, as a lazy stream of :class:`Item` (one per image or frame).

Image files are decoded later, in the engine's decode threads (:meth:`Item.load`);
video frames are decoded here, in order, by a thread of their own that keeps
:data:`VIDEO_READ_AHEAD` frames ready. An input that cannot be read becomes an item
carrying its error, so it still gets a record.
"""

from __future__ import annotations

import errno
import glob
import itertools
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import cv2
import numpy as np

from axrun.errors import InputError, UsageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif",
                            ".tiff", ".pbm", ".pgm", ".ppm", ".pnm", ".jp2", ".sr", ".ras",
                            ".exr", ".hdr", ".pic", ".avif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg",
                            ".wmv", ".flv", ".ts", ".mts", ".3gp", ".ogv", ".gif"})
VIDEO_READ_AHEAD = 4  # decoded frames waiting per video: bounds memory, smooths decoding
_POLL_S = 0.05
T = TypeVar("T")

_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*",
                b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"\x00\x00\x00\x0cjP  ")


@dataclass(frozen=True)
class Item:
    """One input: an image file, or one frame of a video.

    ``source`` is the path as the user gave or we found it; ``frame``/``time_s`` are
    set for video frames. ``image`` holds already-decoded pixels (video), ``error``
    a failure found before decoding.
    """

    source: str
    frame: int | None = None
    time_s: float | None = None
    image: np.ndarray | None = None
    error: InputError | None = None
    fps: float | None = None
    decode_s: float = 0.0
    rel: str | None = None  # path relative to the folder it was found in (for --save-dir)
    size: int | None = None  # the file's size and modification time, when it exists:
    mtime: float | None = None  # what --resume identifies an input by

    @property
    def key(self) -> tuple[str, int | None]:
        """Which input this is: the path, and the frame for videos."""
        return (self.source, self.frame)

    @property
    def relative(self) -> str:
        """Where outputs derived from this input go under an output folder."""
        return self.rel or Path(self.source).name

    def load(self) -> np.ndarray:
        """The BGR ``uint8`` pixels (H, W, 3). Raises :class:`InputError`."""
        if self.error is not None:
            raise self.error
        if self.image is not None:
            return self.image
        return decode_image(self.source)


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes, with read failures as :class:`InputError` of a precise kind."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        kind = "broken_symlink" if os.path.islink(path) else "not_found"
        raise InputError(f"{path}: no such file", kind) from None
    except PermissionError:
        raise InputError(f"{path}: permission denied", "permission") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory", "read") from None
    except OSError as exc:
        kind = "symlink_loop" if exc.errno == errno.ELOOP else "read"
        raise InputError(f"{path}: cannot read ({exc.strerror})", kind) from None
    except ValueError:  # a NUL byte in the name
        raise InputError(f"{path!r}: not a valid file name", "not_found") from None


def _is_regular_file(name: bytes) -> bool:
    try:
        return stat.S_ISREG(os.stat(name).st_mode)
    except OSError:
        return False


def decode_image(path: str | Path) -> np.ndarray:
    """Decode an image file to BGR ``uint8``; EXIF orientation is applied.

    Greyscale, 16-bit and alpha images are converted to 8-bit BGR.
    """
    # A regular file: one OpenCV call reads and decodes it with the GIL released
    # throughout (a Python read releases and retakes it several times). OpenCV gets
    # the name as bytes: a name that is not UTF-8 crashes it as a str. Anything else
    # (a pipe, a failure) takes the path below, which also says what went wrong.
    name = os.fsencode(path)
    if b"\0" not in name and _is_regular_file(name):
        try:
            image = cv2.imread(name, cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
        if image is not None:
            return image
    data = read_bytes(path)
    if not data:
        raise InputError(f"{path}: empty file", "empty")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise InputError(f"{path}: cannot decode image ({exc.err})", "decode") from None
    if image is None:
        raise InputError(f"{path}: not a decodable image", "decode")
    return image


@dataclass(frozen=True)
class SourceOptions:
    """How inputs are expanded: ``vid_stride`` keeps every n-th video frame,
    ``limit`` stops after that many items, ``null`` reads NUL-separated stdin paths."""

    vid_stride: int = 1
    limit: int | None = None
    null: bool = False

    def __post_init__(self) -> None:
        if self.vid_stride < 1:
            raise UsageError("--vid-stride must be at least 1")
        if self.limit is not None and self.limit < 0:
            raise UsageError("--limit must be 0 or more")


def looks_like_image(path: Path) -> bool:
    """Whether a file's first bytes are those of a common image format."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def file_identity(path: str | Path) -> tuple[int | None, float | None]:
    """A file's size and modification time (what ``--resume`` compares); Nones when the
    file cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return (None, None)
    return (st.st_size, round(st.st_mtime, 6))


def _stat(path: Path) -> dict[str, float | int | None]:
    """The ``size``/``mtime`` fields of an Item for ``path``."""
    size, mtime = file_identity(path)
    return {"size": size, "mtime": mtime}


def _walk(folder: Path) -> Iterator[Path | Item]:
    """Files under ``folder``, recursively, sorted; symlinked folders are not followed
    (no loops); a sub-folder that cannot be listed becomes an error item and the walk
    goes on."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        kind = "permission" if isinstance(exc, PermissionError) else "read"
        yield Item(str(folder), error=InputError(
            f"{folder}: cannot list folder ({exc.strerror})", kind))
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        else:
            yield Path(entry.path)


VideoReader = Callable[[Path, int, "str | None"], Iterator["Item"]]


def _folder_items(folder: Path, options: SourceOptions, video: VideoReader) -> Iterator[Item]:
    found = False
    for path in _walk(folder):
        if isinstance(path, Item):
            found = True
            yield path
            continue
        if path.is_dir():
            continue  # a symlink to a folder: not followed
        suffix = path.suffix.lower()
        rel = str(path.relative_to(folder))
        if suffix in IMAGE_SUFFIXES:
            yield Item(str(path), rel=rel, **_stat(path))
        elif suffix in VIDEO_SUFFIXES:
            yield from video(path, options.vid_stride, rel)
        elif path.is_symlink() and not path.exists():
            if suffix:
                continue
            yield Item(str(path), rel=rel)  # broken link: cannot tell what it was
        elif looks_like_image(path):
            yield Item(str(path), rel=rel, **_stat(path))  # an image by content
        else:
            continue
        found = True
    if not found:
        yield Item(str(folder), error=InputError(f"{folder}: no images or videos in folder",
                                                 "not_found"))


def read_ahead(items: Iterator[T], depth: int, name: str) -> Iterator[T]:
    """``items``, produced by a thread of their own at most ``depth`` ahead of the
    consumer. An exception in ``items`` reaches the consumer; closing this generator
    (or dropping it) stops the thread after the item it is producing."""
    ready: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    free = threading.Semaphore(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not free.acquire(timeout=_POLL_S):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                ready.put((True, item))
            ready.put((False, None))
        except BaseException as exc:
            ready.put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    threading.Thread(target=produce, name=name, daemon=True).start()
    try:
        while True:
            ok, value = ready.get()
            if not ok:
                if value is not None:
                    raise value
                return
            free.release()
            yield value
    finally:
        stop.set()


def video_frames(path: Path, stride: int = 1, rel: str | None = None) -> Iterator[Item]:
    """Every ``stride``-th frame of a video, decoded in order (:func:`read_ahead`);
    failures become items."""
    yield from read_ahead(_decode_video(path, stride, rel), VIDEO_READ_AHEAD,
                          f"axrun-video-{path.name}")


def _decode_video(path: Path, stride: int, rel: str | None) -> Iterator[Item]:
    if not path.exists():
        yield Item(str(path), error=InputError(f"{path}: no such file", "not_found"))
        return
    if not os.access(path, os.R_OK):
        yield Item(str(path), error=InputError(f"{path}: permission denied", "permission"))
        return
    stat = _stat(path)
    cap = cv2.VideoCapture(os.fsencode(path))  # bytes: see decode_image
    try:
        if not cap.isOpened():
            yield Item(str(path), error=InputError(f"{path}: cannot open video", "video"))
            return
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        fps = fps if 0 < fps < 1000 else None
        index = 0
        while True:
            t0 = time.perf_counter()
            if index % stride == 0:
                ok, frame = cap.read()
            else:
                ok, frame = cap.grab(), None
            elapsed = time.perf_counter() - t0
            if not ok:
                break
            if frame is not None:
                yield Item(str(path), frame=index,
                           time_s=round(index / fps, 6) if fps else None,
                           image=frame, fps=fps, decode_s=elapsed, rel=rel, **stat)
            index += 1
        if index == 0:
            yield Item(str(path), error=InputError(f"{path}: video has no readable frames",
                                                   "video"))
    finally:
        cap.release()


def frame_indices(path: Path, stride: int = 1, rel: str | None = None) -> Iterator[Item]:
    """Like :func:`video_frames` without decoding: one pixel-less item per frame the
    container says it has (for counting)."""
    cap = cv2.VideoCapture(os.fsencode(path))  # bytes: see decode_image
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    cap.release()
    if count <= 0:
        yield Item(str(path), rel=rel)
        return
    for index in range(0, count, stride):
        yield Item(str(path), frame=index, rel=rel)


def _path_items(spec: str, options: SourceOptions, video: VideoReader) -> Iterator[Item]:
    path = Path(spec)
    if path.is_dir():
        yield from _folder_items(path, options, video)
    elif path.exists() or path.is_symlink():
        if is_video(path):
            yield from video(path, options.vid_stride, None)
        else:
            yield Item(spec, **_stat(path))  # named explicitly: always an input
    elif glob.has_magic(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            yield Item(spec, error=InputError(f"{spec}: no files match", "not_found"))
        for match in matches:
            if Path(match).is_dir():
                continue
            yield from _path_items(match, options, video)
    else:
        yield Item(spec, error=InputError(f"{spec}: no such file or folder", "not_found"))


def stdin_paths(stream: BinaryIO, null: bool) -> Iterator[str]:
    """Paths from a byte stream, one per line (or NUL-separated); names are kept
    byte-exact (spaces, unicode) and decoded like the file system does."""
    if null:
        chunks = stream.read().split(b"\0")
    else:
        chunks = (line.rstrip(b"\n").rstrip(b"\r") for line in stream)
    for chunk in chunks:
        if chunk:
            yield os.fsdecode(chunk)


class ItemStream(Iterator[Item]):
    """A lazy stream of items that can be closed, and says whether reading it may wait
    on the outside world (``may_wait``: paths from a pipe may come at any time). The
    engine reads such a stream only in its own threads, never in the thread that
    collects results (see :meth:`axrun.engine.Pipeline.run`)."""

    def __init__(self, items: Iterable[Item], may_wait: bool,
                 close: Callable[[], None] | None = None) -> None:
        self._items = iter(items)
        self.may_wait = may_wait
        self._close = close or getattr(self._items, "close", None)

    def __next__(self) -> Item:
        return next(self._items)

    def close(self) -> None:
        """Close the underlying stream, if it can be (a video being read is released)."""
        if self._close is not None:
            self._close()


def expand(specs: Sequence[str], options: SourceOptions | None = None,
           stdin: BinaryIO | None = None,
           skip: Callable[[Item], bool] | None = None,
           video: VideoReader = video_frames) -> ItemStream:
    """The items for command-line inputs: files, folders (recursive, sorted, images by
    extension or content, other files skipped), globs, videos (one item per kept frame,
    read by ``video``) and ``-`` (paths from ``stdin``, themselves expanded). Lazy;
    closing the stream releases a video being read. It may wait for input with ``-`` or
    a named pipe among ``specs``.
    Items for which ``skip`` is true are left out (``--resume``); ``limit`` applies after.
    """
    options = options or SourceOptions()

    def all_items() -> Iterator[Item]:
        for spec in specs:
            if spec == "-":
                if stdin is None:
                    raise UsageError("'-' given but there is no standard input to read")
                for line in stdin_paths(stdin, options.null):
                    yield from _path_items(line, options, video)
            else:
                yield from _path_items(spec, options, video)

    source = all_items()
    items: Iterable[Item] = source
    if skip is not None:
        items = itertools.filterfalse(skip, items)
    if options.limit is not None:
        items = itertools.islice(items, options.limit)
    # Closing the stream closes the source, ending any video read-ahead thread.
    return ItemStream(items, any(_may_wait(spec) for spec in specs), close=source.close)


def _may_wait(spec: str) -> bool:
    """Whether reading this input may wait on the outside world: stdin, or a path that
    names neither a file nor a folder (a named pipe, a device)."""
    if spec == "-":
        return True
    try:
        mode = os.stat(spec).st_mode
    except (OSError, ValueError):
        return False  # missing (an error item) or a glob
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
