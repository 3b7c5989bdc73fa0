"""Inputs: what to run on, as a lazy stream of :class:`Item` (one per image or frame).

Image files are decoded later, in the engine's decode threads (:meth:`Item.load`);
video frames are decoded here, in order, by a thread of their own that keeps
:data:`VIDEO_READ_AHEAD` frames ready. An input that cannot be read becomes an item
carrying its error, so it still gets a record.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import itertools
import os
import queue
import stat
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import cv2
import numpy as np

from axrun import images, video
from axrun.errors import InputError, ParameterError, UsageError
from axrun.files import MAX_READ_BYTES, format_bytes, read_bytes, read_capped
from axrun.images import DEFAULT_BACKGROUND
from axrun.params import choice
from axrun.preprocess import COLORS

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".apng", ".bmp", ".dib", ".webp",
                            ".tif", ".tiff", ".gif", ".pbm", ".pgm", ".ppm", ".pnm", ".jp2",
                            ".sr", ".ras", ".exr", ".hdr", ".pic", ".avif", ".heic", ".heif",
                            ".hif", ".jxl"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg",
                            ".wmv", ".asf", ".flv", ".ts", ".mts", ".m2ts", ".mxf", ".vob",
                            ".m2v", ".h264", ".264", ".h265", ".265", ".hevc", ".3gp", ".ogv"})
VIDEO_READ_AHEAD = 4  # decoded frames waiting per video: bounds memory, smooths decoding
_CHUNK = 1 << 20
MAX_PATH_BYTES = 1 << 16  # a "path" longer than this on stdin names no file (PATH_MAX: 4 KiB)
URL_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "rtmps")
FETCH_TIMEOUT_S = 30.0  # an HTTP(S) image or a stream that sends nothing for this long fails
RECONNECTS = 3  # a live stream that drops is reopened this often, after 1, 2, 4... s
STREAM_READ_TIMEOUT_S = 10.0  # a stream that sends no frame for this long has dropped
_POLL_S = 0.05
T = TypeVar("T")


@dataclass(frozen=True)
class Item:
    """One input: an image file, or one frame of a video.

    ``source`` is the path as the user gave or we found it; ``frame``/``time_s`` are
    set for video frames (``frame`` also for a page of a multi-page image, with
    ``page``). ``image`` holds already-decoded pixels (video frames, arrays),
    ``data`` encoded image bytes to decode, ``error`` a failure found before decoding.
    """

    source: str
    frame: int | None = None
    time_s: float | None = None
    image: np.ndarray | None = None
    error: InputError | None = None
    fps: float | None = None
    decode_s: float = 0.0
    size: int | None = None  # the file's size and modification time, when it exists:
    mtime: float | None = None  # what --resume identifies an input by
    max_bytes: int | None = None  # read at most this many bytes (inputs that are not files)
    data: bytes | None = None  # an encoded image given as bytes, decoded by load()
    page: int | None = None  # a page of a multi-page image file (also its ``frame``)
    planes: video.I420 | None = None  # a video frame not yet converted to BGR
    background: tuple[int, int, int] = DEFAULT_BACKGROUND  # RGB under transparent pixels

    def load_for(self, scale_for: images.ScaleFor | None) -> tuple[
            np.ndarray, images.Original | None]:
        """The BGR ``uint8`` pixels (H, W, 3), decoded only as large as the
        preprocessing needs when ``scale_for`` says how much it shrinks them (see
        :func:`axrun.images.decode_bytes_for`), and what they were decoded from when
        that was at a reduced scale (None: they are the original's).

        Raises:
            InputError: the input cannot be read or decoded.
        """
        if self.error is not None:
            raise self.error
        if self.image is not None:
            return self.image, None
        if self.planes is not None:  # converted at the size the preprocessing needs
            width, height = self.planes.size
            factor = min(1.0, scale_for(height, width)) if scale_for is not None else 1.0
            image, (sx, sy) = self.planes.to_bgr(factor)
            return image, (images.Original(width, height, sx, sy) if factor < 1 else None)
        if self.data is not None or is_url(self.source):
            data = self.data if self.data is not None else \
                fetch_url(self.source, self.max_bytes or MAX_READ_BYTES)
            image, original = images.decode_bytes_for(data, self.source, self.page,
                                                      self.background, scale_for)
        else:
            image, original = images.decode_image_for(
                self.source, self.max_bytes or MAX_READ_BYTES, self.page, self.background,
                scale_for)
        return image, (original if (original.scale_x, original.scale_y) != (1, 1) else None)

    def load(self) -> np.ndarray:
        """The BGR ``uint8`` pixels (H, W, 3) at full size. Raises :class:`InputError`."""
        return self.load_for(None)[0]


def parse_bytes(text: str) -> int:
    """A byte count with an optional binary suffix: ``1G``, ``300M``, ``64K``, ``512``.

    Raises:
        ParameterError: not such a count, or below 1.
    """
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    body = text.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = body[-1:] if body[-1:] in units else ""
    try:
        value = int(body[: len(body) - len(suffix)]) * units[suffix]
    except ValueError:
        raise ParameterError("max_read_bytes", f"must be a size like 1G or 300M, not "
                             f"{text!r}") from None
    if value < 1:
        raise ParameterError("max_read_bytes", "must be at least 1")
    return value


@dataclass(frozen=True)
class SourceOptions:
    """How inputs are expanded: ``vid_stride`` keeps every n-th video frame,
    ``limit`` stops after that many items, ``null`` reads NUL-separated stdin paths,
    ``max_read_bytes`` caps what is read from an input that is not a regular file
    (bytes), ``reconnects`` is how often a live stream that drops is reopened,
    ``background`` the RGB colour transparent pixels are composited over; ``shard``
    ``(k, n)`` keeps only the inputs of shard ``k`` of ``n`` (see :func:`shard_of`)."""

    vid_stride: int = 1
    limit: int | None = None
    null: bool = False
    max_read_bytes: int = MAX_READ_BYTES
    reconnects: int = RECONNECTS
    background: tuple[int, int, int] = DEFAULT_BACKGROUND
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.shard is not None and not (1 <= self.shard[0] <= self.shard[1]):
            raise ParameterError("shard", f"must be K/N with 1 <= K <= N (got "
                                 f"{self.shard[0]}/{self.shard[1]})")
        if self.vid_stride < 1:
            raise ParameterError("vid_stride", f"must be at least 1 (got {self.vid_stride})")
        if self.limit is not None and self.limit < 0:
            raise ParameterError("limit", f"must be 0 or more (got {self.limit})")
        if self.max_read_bytes < 1:
            raise ParameterError("max_read_bytes", "must be at least 1")
        if self.reconnects < 0:
            raise ParameterError("reconnects", f"must be 0 or more (got {self.reconnects})")
        bg = self.background
        if not (isinstance(bg, tuple) and len(bg) == 3 and all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in bg)):
            raise ParameterError("background", f"must be three 0-255 integers (R, G, B), "
                                 f"not {bg!r}")


def looks_like_image(path: Path) -> bool:
    """Whether a file's first bytes are those of an image format (:mod:`axrun.images`)."""
    try:
        with path.open("rb") as f:
            head = f.read(32)
    except OSError:
        return False
    return images.image_format(head) is not None


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


def _file_items(spec: str, path: Path, options: SourceOptions,
                max_bytes: int | None = None) -> Iterator[Item]:
    """The item of an image file, with the ``size``/``mtime`` that ``--resume`` knows
    it by; one per page of a multi-page file (TIFF, animated GIF, WebP or PNG: ``frame``
    is the page's index, a single-page file is an image)."""
    size, mtime = file_identity(path)
    pages = images.page_count(path) if max_bytes is None and \
        path.suffix.lower() in images.PAGED_SUFFIXES else 1
    for page in range(pages):
        yield Item(spec, frame=page if pages > 1 else None, page=page if pages > 1 else None,
                   size=size, mtime=mtime, max_bytes=max_bytes, background=options.background)


def _walk(folder: Path) -> Iterator[os.DirEntry[str] | Item]:
    """Entries under ``folder`` that are not folders, recursively, sorted, as
    ``DirEntry`` (their type is known without a system call); symlinked folders are
    not followed (no loops); a sub-folder that cannot be listed becomes an error item
    and the walk goes on. Depth-first with a stack of its own: no recursion limit, however deep."""
    stack = [_listing(folder)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif isinstance(entry, Item):
            yield entry
        elif entry.is_dir(follow_symlinks=False):
            stack.append(_listing(Path(entry.path)))
        else:
            yield entry


def _listing(folder: Path) -> Iterator[os.DirEntry[str] | Item]:
    """A folder's entries sorted by name, or an error item if it cannot be listed."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        kind = "permission" if isinstance(exc, PermissionError) else "read"
        yield Item(str(folder), error=InputError(
            f"{folder}: cannot list folder ({exc.strerror})", kind))
        return
    yield from entries


VideoReader = Callable[[Path, int], Iterator["Item"]]


def _folder_items(folder: Path, options: SourceOptions, video: VideoReader) -> Iterator[Item]:
    found = False
    for entry in _walk(folder):
        if isinstance(entry, Item):
            found = True
            yield entry
            continue
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()
        except OSError:  # a symlink loop: not a folder, not a file (reported below)
            is_dir = is_file = False
        if is_dir:
            continue  # a symlink to a folder: not followed
        path = Path(entry.path)
        suffix = path.suffix.lower()
        if not is_file and (special := special_file(path)) is not None:
            yield _not_regular(path, special)  # never opened: it could wait forever
        elif suffix in IMAGE_SUFFIXES:
            yield from _file_items(str(path), path, options)
        elif suffix in VIDEO_SUFFIXES:
            yield from video(path, options.vid_stride)
        elif path.is_symlink() and not path.exists():
            if suffix:
                continue
            yield Item(str(path))  # broken link: cannot tell what it was
        elif looks_like_image(path):
            yield from _file_items(str(path), path, options)  # an image by content
        else:
            continue
        found = True
    if not found:
        yield Item(str(folder), error=InputError(f"{folder}: no images or videos in folder",
                                                 "not_found"))


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def special_file(path: str | Path) -> str | None:
    """What ``path`` is (symlinks followed) when it is neither a regular file nor a
    folder, e.g. ``"a named pipe"``; None otherwise (also when it does not exist)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return next((name for test, name in _SPECIAL_KINDS if test(mode)),
                "not a regular file")


def _not_regular(path: Path, kind: str) -> Item:
    return Item(str(path), error=InputError(
        f"{path}: {kind}, found by a folder scan or glob: not read (name it on the "
        "command line to read it)", "not_regular"))


# Set when the interpreter begins to exit (before it joins non-daemon threads): the
# read-ahead threads then end after the frame they are reading. They are not daemons:
# a daemon thread still inside OpenCV's C++ code (a live stream's read) when the
# interpreter finalizes is unwound by force and aborts the process ("FATAL: exception
# not rethrown", SIGABRT, after every record was written). threading._register_atexit
# is CPython's hook for this, as concurrent.futures uses it; atexit runs too late.
_EXITING = threading.Event()
_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(_EXITING.set)


def read_ahead(items: Iterator[T], depth: int, name: str) -> Iterator[T]:
    """``items``, produced by a thread of their own at most ``depth`` ahead of the
    consumer. An exception in ``items`` reaches the consumer; closing this generator
    (or dropping it) stops the thread after the item it is producing, and so does the
    interpreter's exit (which waits for that)."""
    ready: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    free = threading.Semaphore(depth)
    stop = threading.Event()

    def stopped() -> bool:
        return stop.is_set() or _EXITING.is_set()

    def produce() -> None:
        try:
            for item in items:
                while not free.acquire(timeout=_POLL_S):
                    if stopped():
                        return
                if stopped():
                    return
                ready.put((True, item))
            ready.put((False, None))
        except BaseException as exc:
            ready.put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    threading.Thread(target=produce, name=name, daemon=_register_atexit is None).start()
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


def video_frames(path: Path, stride: int = 1) -> Iterator[Item]:
    """Every ``stride``-th frame of a video, decoded in order (:func:`read_ahead`);
    failures become items."""
    yield from read_ahead(_decode_video(path, stride), VIDEO_READ_AHEAD,
                          f"axrun-video-{path.name}")


def _decode_video(path: Path, stride: int) -> Iterator[Item]:
    """A video file through FFmpeg (:mod:`axrun.video`): each frame at its
    presentation time, and an error item for every stretch of frames lost."""
    import av

    if not path.exists():
        yield Item(str(path), error=InputError(f"{path}: no such file", "not_found"))
        return
    if not os.access(path, os.R_OK):
        yield Item(str(path), error=InputError(f"{path}: permission denied", "permission"))
        return
    if path.stat().st_size == 0:
        yield Item(str(path), error=InputError(f"{path}: empty (0 bytes)", "empty"))
        return
    try:
        container = video.open_video(path)
    except (OSError, av.FFmpegError) as exc:
        hint = " (a file cut short, before its index was written?)" \
            if isinstance(exc, av.error.InvalidDataError) else ""
        yield Item(str(path), error=InputError(
            f"{path}: cannot open video ({getattr(exc, 'strerror', None) or exc}){hint}",
            "video"))
        return
    if not container.streams.video:
        container.close()
        yield Item(str(path), error=InputError(f"{path}: no video stream", "video"))
        return
    source, (size, mtime) = str(path), file_identity(path)
    fps = video.video_info_of(container).fps
    found = False
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        container.close()  # an image with a video's name: FFmpeg reads it as one frame
        yield from _file_items(str(path), path, SourceOptions())
        return
    for got in video.read_video(container, stride, str(path)):
        found = True
        if isinstance(got, video.Lost):
            yield Item(source, frame=got.frame, time_s=got.start_s, size=size, mtime=mtime,
                       error=InputError(f"{source}: {_lost_text(got)}", "video"))
        elif got.image is not None:
            planes = got.image if isinstance(got.image, video.I420) else None
            yield Item(source, frame=got.index, time_s=got.time_s, fps=fps,
                       image=None if planes is not None else got.image,  # type: ignore[arg-type]
                       planes=planes, decode_s=got.decode_s, size=size, mtime=mtime)
    if not found:
        yield Item(source, error=InputError(f"{source}: video has no readable frames", "video"))


def _lost_text(lost: video.Lost) -> str:
    """``12 frames lost (2.100-2.467 s) before frame 63: damaged data``."""
    span = ""
    if lost.start_s is not None:
        span = f" ({lost.start_s:.3f} s)" if lost.end_s in (None, lost.start_s) else \
            f" ({lost.start_s:.3f}-{lost.end_s:.3f} s)"
    elif lost.end_s is not None:
        span = f" (up to {lost.end_s:.3f} s)"
    if lost.frame is not None:
        return f"frame {lost.frame}{span} damaged: {lost.why}"
    where = (f"at the end, after frame {lost.before - 1}" if lost.end and lost.before else
             f"before frame {lost.before}" if lost.before else "at the start")
    return f"{lost.count} frame(s) lost{span} {where}: {lost.why}"


def _video_file(cap: cv2.VideoCapture, source: str, stride: int,
                **fields: Any) -> Iterator[Item]:
    """The frames of an opened video file (``time_s`` by the container's clock), or
    an error item when none is readable; releases ``cap``."""
    try:
        if not (yield from _capture_frames(cap, source, stride, 0, None, **fields)):
            yield Item(source, error=InputError(f"{source}: video has no readable frames",
                                                "video"))
    finally:
        cap.release()


def _capture_frames(cap: cv2.VideoCapture, source: str, stride: int, first: int,
                    opened_at: float | None, **fields: Any) -> Generator[Item, None, int]:
    """Every ``stride``-th frame ``cap`` gives until a read fails, numbered from
    ``first``; returns the number of frames read (kept or not). ``time_s`` is the frame
    index over the container's frame rate, or for a live source (``opened_at`` given, a
    ``time.monotonic()``) the seconds since it was opened."""
    rate = cap.get(cv2.CAP_PROP_FPS) or 0.0
    fps = rate if 0 < rate < 1000 else None
    index = first
    while True:
        t0 = time.perf_counter()
        if index % stride == 0:
            ok, frame = cap.read()
        else:
            ok, frame = cap.grab(), None
        elapsed = time.perf_counter() - t0
        if not ok:
            return index - first
        if frame is not None:
            if opened_at is not None:
                time_s: float | None = round(time.monotonic() - opened_at, 6)
            else:
                time_s = round(index / fps, 6) if fps else None
            yield Item(source, frame=index, time_s=time_s, image=frame, fps=fps,
                       decode_s=elapsed, **fields)
        index += 1


def live_frames(source: str, open_capture: Callable[[], cv2.VideoCapture], stride: int = 1,
                reconnects: int = RECONNECTS, what: str = "stream") -> Iterator[Item]:
    """Frames of a live source (a camera, an RTSP/RTMP/HTTP stream) as they arrive, in
    a read-ahead thread (:func:`read_ahead`). A live source has no end: when a read
    fails, the source is reopened up to ``reconnects`` times in a row, after 1, 2,
    4, ... seconds (frame numbers go on; a frame that arrives resets the count); then
    an error item (``stream``) ends it. ``time_s`` is seconds since it was opened.
    ``what`` names the source in the error when it cannot be opened at all."""
    yield from read_ahead(_live(source, open_capture, stride, reconnects, what),
                          VIDEO_READ_AHEAD, "axrun-live")


def _live(source: str, open_capture: Callable[[], cv2.VideoCapture], stride: int,
          reconnects: int, what: str) -> Iterator[Item]:
    index, failures, opened_at = 0, 0, None
    while True:
        cap = open_capture()
        try:
            if cap.isOpened():
                opened_at = opened_at or time.monotonic()
                got = yield from _capture_frames(cap, source, stride, index, opened_at)
                index += got
                failures = 0 if got else failures
        finally:
            cap.release()
        if opened_at is None:  # never opened: nothing to reconnect to
            yield Item(source, error=InputError(f"{source}: cannot open {what}", "stream"))
            return
        if failures >= reconnects:
            yield Item(source, frame=index, error=InputError(
                f"{source}: stream lost after frame {index - 1}, reopened {failures} "
                "time(s) in vain (reconnects, --reconnects)", "stream"))
            return
        if _EXITING.wait(2.0 ** failures):
            return
        failures += 1


def frame_indices(path: Path, stride: int = 1) -> Iterator[Item]:
    """Like :func:`video_frames` without decoding: one pixel-less item per frame the
    container says it has (for counting); one item with ``frame`` None when it does
    not say (:func:`countable_frames` tells)."""
    info = video.video_info(path)
    if info is None or info.frames is None:
        yield Item(str(path))
        return
    for index in range(0, info.frames, stride):
        yield Item(str(path), frame=index)


def _path_items(spec: str, options: SourceOptions, video: VideoReader,
                scanned: bool = False) -> Iterator[Item]:
    """The items of one input as given (``scanned``: matched by a glob, not named)."""
    if spec == "":  # Path("") is the working folder: never read it by accident
        yield Item(spec, error=InputError(f"{spec!r}: an empty name names no file",
                                          "not_found"))
        return
    if is_url(spec):
        yield from _url_items(spec, options)
        return
    if (camera := camera_source(spec)) is not None:
        yield from live_frames(spec, lambda: cv2.VideoCapture(camera), options.vid_stride,
                               options.reconnects, "camera (and no file has that name)")
        return
    path = Path(spec)
    if path.is_dir():
        yield from _folder_items(path, options, video)
    elif path.exists() or path.is_symlink():
        special = special_file(path)
        if special is not None and scanned:
            yield _not_regular(path, special)
        elif is_video(path):
            yield from video(path, options.vid_stride)
        elif special is None and is_list_file(spec):
            yield from _listed_items(path, options, video)
        else:  # named explicitly: always an input; a pipe or device is read, capped
            yield from _file_items(spec, path, options,
                                   options.max_read_bytes if special else None)
    elif glob.has_magic(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            yield Item(spec, error=InputError(f"{spec}: no files match", "not_found"))
        for match in matches:
            if Path(match).is_dir():
                continue
            yield from _path_items(match, options, video, scanned=True)
    else:
        yield Item(spec, error=InputError(f"{spec}: no such file or folder", "not_found"))


def is_url(spec: str) -> bool:
    """Whether an input is a URL axrun reads (``http(s)://``, ``rtsp(s)://``, ``rtmp(s)://``)."""
    scheme, sep, _ = spec.partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES


def camera_source(spec: str) -> int | str | None:
    """The camera an input names, as OpenCV opens it: an index (``0``, when no file
    of that name exists) or a V4L2 device (``/dev/video0``); None for anything else."""
    if spec.isdigit() and not os.path.lexists(spec):
        return int(spec)
    if spec.startswith("/dev/video") and spec[len("/dev/video"):].isdigit():
        return spec
    return None


def is_list_file(spec: str) -> bool:
    """Whether an input named on the command line is a list of inputs (``*.txt``)."""
    return spec.lower().endswith(".txt")


def _listed_items(path: Path, options: SourceOptions, video: VideoReader) -> Iterator[Item]:
    """The inputs a list file names, one per line (blank lines and ``#`` comments
    skipped). A relative path is taken from the current folder, else from the list's."""
    try:
        lines = read_bytes(path, options.max_read_bytes).splitlines()
    except InputError as exc:
        yield Item(str(path), error=exc)
        return
    for raw in lines:
        line = os.fsdecode(raw.strip())
        if not line or line.startswith("#"):
            continue
        if not (is_url(line) or os.path.isabs(line) or os.path.lexists(line)
                or glob.has_magic(line)) and os.path.lexists(path.parent / line):
            line = str(path.parent / line)
        if is_list_file(line):  # no recursion, no loops
            yield Item(line, error=InputError(f"{line}: a list file named in a list file "
                                              f"({path}): not read", "not_found"))
            continue
        yield from _path_items(line, options, video)


def fetch_url(url: str, max_bytes: int = MAX_READ_BYTES) -> bytes:
    """The body of an HTTP(S) URL, at most ``max_bytes``, within :data:`FETCH_TIMEOUT_S`.

    Raises:
        InputError: ``url`` (the server's status or the network error), or ``too_large``.
    """
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            return read_capped(response, max_bytes, url)
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: HTTP {exc.code} {exc.reason}", "url") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"{url}: cannot fetch ({reason})", "url") from None


def _url_items(url: str, options: SourceOptions) -> Iterator[Item]:
    """An HTTP(S) image (by its path's extension, else by its Content-Type or first
    bytes), decoded in the engine's threads; anything else is a video for FFmpeg: a
    file when it says how many frames it has, else a live stream."""
    if url.lower().startswith(("http://", "https://")):
        suffix = Path(urllib.parse.urlsplit(url).path).suffix.lower()
        if suffix in IMAGE_SUFFIXES or (suffix not in VIDEO_SUFFIXES and _serves_image(url)):
            yield Item(url, max_bytes=options.max_read_bytes)
            return
    first: list[cv2.VideoCapture] = [_open_url(url)]
    if first[0].isOpened() and first[0].get(cv2.CAP_PROP_FRAME_COUNT) > 0:
        yield from _video_file(first[0], url, options.vid_stride)  # as a local one
        return

    def capture() -> cv2.VideoCapture:  # the capture opened above, then new ones
        return first.pop() if first else _open_url(url)

    yield from live_frames(url, capture, options.vid_stride, options.reconnects)


def _open_url(url: str) -> cv2.VideoCapture:
    """A video or stream URL opened by FFmpeg, giving up on opening after
    :data:`FETCH_TIMEOUT_S` and on a read after :data:`STREAM_READ_TIMEOUT_S` (a live
    stream silent that long has dropped)."""
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(FETCH_TIMEOUT_S * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(STREAM_READ_TIMEOUT_S * 1000)])


def _serves_image(url: str) -> bool:
    """Whether an HTTP(S) URL answers with an image (its Content-Type, or its first
    bytes); False when it cannot be asked (opening the stream then says why)."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            if str(response.headers.get_content_type()).startswith("image/"):
                return True
            return images.image_format(response.read(32)) is not None
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stdin_paths(stream: BinaryIO, null: bool) -> Iterator[str]:
    """Paths from a byte stream, one per line (or NUL-separated), each as soon as its
    separator (or the end) arrives; names are kept byte-exact (spaces, unicode) and
    decoded like the file system does. A piece longer than :data:`MAX_PATH_BYTES`
    comes cut to one byte more than that (it names no file), the rest dropped: memory
    stays bounded on a stream without separators."""
    for chunk in _split_stream(stream, b"\0" if null else b"\n", MAX_PATH_BYTES):
        if not null:
            chunk = chunk.removesuffix(b"\r")
        if chunk:
            yield os.fsdecode(chunk)


def _split_stream(stream: BinaryIO, separator: bytes, limit: int) -> Iterator[bytes]:
    """The pieces of ``stream`` between separators, each yielded as soon as it is
    complete (a piece over ``limit`` bytes: its first ``limit + 1``, at once): reads
    what has arrived, never waits for a full buffer. A stream with a file descriptor
    is read with ``os.read``, not through Python's buffered reader, whose lock a
    thread still waiting there at exit would hold (a fatal error at shutdown)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.BytesIO and the like
        read: Callable[[int], bytes] = getattr(stream, "read1", stream.read)
    else:
        def read(size: int) -> bytes:
            return os.read(fd, size)
    pending, dropping = b"", False
    while block := read(_CHUNK):
        if dropping:  # the rest of an over-long piece
            cut = block.find(separator)
            if cut < 0:
                continue
            block, dropping = block[cut + len(separator):], False
        *complete, pending = (pending + block).split(separator)
        yield from complete
        if len(pending) > limit:
            yield pending[: limit + 1]
            pending, dropping = b"", True
    if pending:
        yield pending


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
    read by ``video``), ``-`` (paths from ``stdin``, themselves expanded), list files
    (``*.txt``, one input per line), HTTP(S) images and videos, live streams (RTSP,
    RTMP, HTTP) and cameras (``0``, ``/dev/video0``). Lazy; closing the stream releases
    a video being read. It may wait for input when any of these but files, folders
    and globs is among ``specs`` (see :func:`countable`).
    Items for which ``skip`` is true are left out (``--resume``); ``limit`` applies after.
    """
    options = options or SourceOptions()

    def all_items() -> Generator[Item, None, None]:
        for spec in specs:
            if spec == "-":
                if stdin is None:
                    raise UsageError("'-' given but there is no standard input to read")
                for line in stdin_paths(stdin, options.null):
                    if len(os.fsencode(line)) > MAX_PATH_BYTES:
                        yield Item(line[:60] + "...", error=InputError(
                            f"stdin: a path of more than {format_bytes(MAX_PATH_BYTES)}: "
                            "not a file name", "not_found"))
                        continue
                    yield from _path_items(line, options, video)
            else:
                yield from _path_items(spec, options, video)

    source = all_items()
    items: Iterable[Item] = source
    if options.shard is not None:
        k, n = options.shard
        items = (item for item in items if shard_of(item.source, n) == k)
    if skip is not None:
        items = itertools.filterfalse(skip, items)
    if options.limit is not None:
        items = itertools.islice(items, options.limit)
    # Closing the stream closes the source, ending any video read-ahead thread.
    return ItemStream(items, any(_may_wait(spec) for spec in specs), close=source.close)


def shard_of(source: str, shards: int) -> int:
    """Which of ``shards`` shards (1 to N) an input belongs to: by a CRC-32 of its name
    as given (UTF-8, undecodable bytes kept), so the same on every machine and in every
    run over the same inputs; a video's frames all go with their video."""
    return zlib.crc32(os.fsencode(source)) % shards + 1


def _may_wait(spec: str) -> bool:
    """Whether reading this input may wait on the outside world: stdin, a URL, a
    camera, a list file (it may name those), or a path that names neither a file nor
    a folder (a named pipe, a device)."""
    if spec == "-" or is_url(spec) or camera_source(spec) is not None:
        return True
    try:
        mode = os.stat(spec).st_mode
    except (OSError, ValueError):
        return False  # missing (an error item) or a glob
    if stat.S_ISREG(mode):
        return is_list_file(spec)
    return not stat.S_ISDIR(mode)


def countable(specs: Sequence[str]) -> bool:
    """Whether the items of ``specs`` can be counted ahead (for a progress bar) without
    reading anything that may wait or never end."""
    return not any(_may_wait(spec) for spec in specs)


# -- inputs from Python: any mix of paths, arrays, bytes and iterables of them -------------

Input = str | os.PathLike[str] | np.ndarray | bytes | bytearray | memoryview | Item | \
    Iterable[Any]


def array_item(array: np.ndarray, source: str, color: str = "bgr") -> Item:
    """An image given as pixels: ``uint8`` (H, W, 3) in ``color`` order (``bgr`` as
    OpenCV decodes, or ``rgb`` as PIL and most others do), or grey (H, W) or (H, W, 1).
    The item holds a BGR copy: the caller may reuse its buffer at once (a video
    reader's frame, say). Anything else (another dtype, 4 channels, no pixels) gets an
    ``array`` error record, never a guess at what it holds."""
    shape = array.shape
    grey = array.ndim == 2 or (array.ndim == 3 and shape[2] == 1)
    if array.dtype != np.uint8:
        problem = f"dtype {array.dtype}, not uint8 (0-255 pixel values)"
    elif not (grey or (array.ndim == 3 and shape[2] == 3)):
        problem = f"shape {shape}, not (H, W, 3) BGR or (H, W) grey"
    elif array.size == 0:
        problem = f"shape {shape}: no pixels"
    elif grey:
        return Item(source, image=cv2.cvtColor(np.ascontiguousarray(array.reshape(shape[:2])),
                                               cv2.COLOR_GRAY2BGR))
    elif color == "rgb":
        return Item(source, image=cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2BGR))
    else:
        return Item(source, image=np.array(array, order="C"))  # a copy
    return Item(source, error=InputError(f"{source}: {problem}", "array"))


def items_from(inputs: Input, options: SourceOptions | None = None,
               may_wait: bool | None = None, color: str = "bgr") -> ItemStream:
    """Items for inputs given from Python, in order: a path, folder, glob, URL or
    camera (as on the command line, :func:`expand`); an image array (see
    :func:`array_item`); encoded image bytes (JPEG, PNG..., decoded in the engine's
    threads); an :class:`Item`; or an iterable of any of these (a list, a generator,
    nested), read lazily. Arrays and bytes are named ``<array N>`` and ``<bytes N>``
    in results, ``N`` their position among the inputs given (0 first; an iterable
    inside counts each of its elements).

    ``may_wait``: whether reading may wait on the outside world (the engine then
    reads it in its own threads only); by default true when a path given alone or in
    a list or tuple is stdin (``-``), a URL, a camera, a pipe or a list file; a
    generator is read at full speed unless this says otherwise. ``color``: the
    channel order of 3-channel arrays, ``bgr`` or ``rgb``.

    Raises:
        ParameterError: ``color`` is neither; (while reading) a value that is none of
            the kinds above (a file object or a mapping, for instance: iterating
            them would give lines or keys).
    """
    choice("color", color, COLORS)
    options = options or SourceOptions()
    expanded = dataclasses.replace(options, limit=None)  # the limit applies once, below
    position = 0

    def flat(value: Any) -> Generator[Item, None, None]:
        nonlocal position
        if isinstance(value, Item | str | os.PathLike | bytes | bytearray | memoryview |
                      np.ndarray):
            n, position = position, position + 1
            if isinstance(value, Item):
                yield value
            elif isinstance(value, str | os.PathLike):
                spec = os.fspath(value)
                stdin = sys.stdin.buffer if spec == "-" and sys.stdin is not None else None
                yield from expand([spec], expanded, stdin)
            elif isinstance(value, np.ndarray):
                yield array_item(value, f"<array {n}>", color)
            else:
                yield Item(f"<bytes {n}>", data=bytes(value))
        elif isinstance(value, Iterable) and not isinstance(value, io.IOBase | Mapping):
            for element in value:
                yield from flat(element)
        else:
            raise ParameterError("inputs", f"cannot hold {type(value).__name__} values: give "
                                 "paths, image arrays, encoded image bytes (a file's "
                                 "read()), or iterables of them")

    if may_wait is None:
        listed = inputs if isinstance(inputs, list | tuple) else [inputs]
        may_wait = any(isinstance(v, str | os.PathLike) and _may_wait(os.fspath(v))
                       for v in listed)
    source = flat(inputs)
    items: Iterable[Item] = source
    if options.limit is not None:
        items = itertools.islice(items, options.limit)
    return ItemStream(items, may_wait, close=source.close)
