"""Reading video files through FFmpeg (PyAV): every frame at its presentation time,
decoding past damaged data, and every frame lost said so.

OpenCV's ``VideoCapture`` numbers frames and gives each ``index / average fps`` as its
time (wrong for variable-frame-rate video, most phone and screen recordings), has no
time at all when the container states no rate (WebM as browsers record it), and stops
at the first unreadable frame as if the video had ended. PyAV exposes each frame's
presentation timestamp and each packet, so a damaged packet is skipped and counted.

:func:`read_video` yields :class:`Frame` and :class:`Lost` values in presentation
order; :mod:`axrun.sources` turns them into items and error records.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger("axrun")

# Colour spaces FFmpeg converts with the BT.601 matrix (AVCOL_SPC_UNSPECIFIED,
# BT470BG, SMPTE170M, and FCC, close to it): for those, OpenCV's I420 conversion gives
# the same pixels within rounding (at most 4 levels), about 1.6 times as fast as
# FFmpeg's swscale here; every other (BT.709 for HD video) goes through swscale with
# the frame's own colour space.
_BT601 = frozenset({2, 4, 5, 6})
# Bytes between one packet's end and the next's start past which a Matroska/WebM
# demuxer has skipped data: block and cluster headers take a few dozen.
SKIP_BYTES = 256


@dataclass(frozen=True)
class I420:
    """A decoded frame still in YUV 4:2:0 (BT.601, limited range), as most video is:
    converted to BGR by the thread that needs it, at the size it needs (converting a
    1080p frame in full, then shrinking it for a 416-pixel network, took the single
    reading thread's time for pixels nobody sees).

    ``planes``: ``(height * 3 // 2, width)`` ``uint8``, Y then U then V (the stored
    frame); ``rotation``: counter-clockwise degrees to show it upright.
    """

    planes: np.ndarray
    rotation: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """The upright frame's (width, height), pixels."""
        h, w = self.planes.shape[0] * 2 // 3, self.planes.shape[1]
        return (h, w) if self.rotation in (90, 270) else (w, h)

    def to_bgr(self, scale: float = 1.0) -> tuple[np.ndarray, tuple[float, float]]:
        """BGR ``uint8`` pixels, upright, at least ``scale`` times the frame's size
        (each side even: Y, U and V shrunk by INTER_LINEAR, then converted); and the
        scale each axis got (upright x, y)."""
        h, w = self.planes.shape[0] * 2 // 3, self.planes.shape[1]
        if scale >= 1:
            image = cv2.cvtColor(self.planes, cv2.COLOR_YUV2BGR_I420)
            sx = sy = 1.0
        else:
            w2 = min(w, max(2, 2 * math.ceil(w * scale / 2)))  # at least what was asked
            h2 = min(h, max(2, 2 * math.ceil(h * scale / 2)))
            y = self.planes[:h]
            uv = self.planes[h:].reshape(2, h // 2, w // 2)
            small = np.empty((h2 * 3 // 2, w2), np.uint8)
            cv2.resize(y, (w2, h2), small[:h2], interpolation=cv2.INTER_LINEAR)
            quarter = (h2 // 2) * (w2 // 2)
            for k in range(2):
                plane = cv2.resize(uv[k], (w2 // 2, h2 // 2), interpolation=cv2.INTER_LINEAR)
                small[h2:].reshape(-1)[k * quarter:(k + 1) * quarter] = plane.reshape(-1)
            image = cv2.cvtColor(small, cv2.COLOR_YUV2BGR_I420)
            sx, sy = w2 / w, h2 / h
        image = _rotate(image, self.rotation)
        return image, ((sy, sx) if self.rotation in (90, 270) else (sx, sy))


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``index`` counts the frames decoded (0 first), ``time_s`` is
    its presentation time from the stream's start (None when it has no timestamp),
    ``image`` BGR ``uint8``, or :class:`I420` to convert later (None for a frame skipped
    by the stride)."""

    index: int
    time_s: float | None
    image: np.ndarray | I420 | None
    decode_s: float


@dataclass(frozen=True)
class Lost:
    """Frames the container holds that could not be decoded (damaged data), or that
    it declares but does not hold (an early end): ``count`` of them, from ``start_s``
    to ``end_s`` (None: unknown), before the frame numbered ``before`` (the decoded
    frame that follows them, or the total decoded at the end). ``frame``: the number
    of a frame that was decoded but is damaged (the decoder concealed lost data)."""

    before: int
    count: int
    start_s: float | None
    end_s: float | None
    why: str
    frame: int | None = None
    end: bool = False  # at the end of the video, not before a frame


@dataclass(frozen=True)
class VideoInfo:
    """What the container says: the average frame rate (None when it does not say,
    as WebM often does not) and the number of frames (None likewise)."""

    fps: float | None
    frames: int | None


def _rate(stream: Any) -> float | None:
    rate = stream.average_rate or stream.guessed_rate
    value = float(rate) if rate else 0.0
    return value if 0 < value < 1000 else None


def open_video(path: str | Path) -> Any:
    """An opened PyAV container (any file name, UTF-8 or not: opened as a file object).

    Raises:
        OSError: the file cannot be opened. av.FFmpegError: FFmpeg cannot read it.
    """
    import av

    f = open(os.fsencode(path), "rb")  # noqa: SIM115 - the container owns it, closed with it
    try:
        return av.open(f, "r")
    except BaseException:
        f.close()
        raise


def video_info_of(container: Any) -> VideoInfo:
    """What an opened container says of its first video stream."""
    stream = container.streams.video[0]
    return VideoInfo(_rate(stream), int(stream.frames) or None)


def video_info(path: str | Path) -> VideoInfo | None:
    """The frame rate and frame count the container states (None: not a readable
    video), without decoding."""
    import av

    try:
        with open_video(path) as container:
            return video_info_of(container) if container.streams.video else None
    except (OSError, av.FFmpegError):
        return None


def pixels(frame: Any) -> np.ndarray | I420:
    """A decoded PyAV frame's pixels: :class:`I420` when OpenCV converts its colour
    space (BT.601 4:2:0, limited range, even sides), else BGR ``uint8`` converted by
    FFmpeg in the frame's own colour space (BT.709...), upright as its display matrix
    says (a phone's portrait video)."""
    rotation = frame.rotation % 360  # counter-clockwise degrees to display it upright
    if frame.format.name == "yuv420p" and frame.colorspace in _BT601 \
            and frame.color_range != 2 and frame.width % 2 == 0 and frame.height % 2 == 0:
        return I420(frame.to_ndarray(), rotation)
    return _rotate(frame.to_ndarray(format="bgr24"), rotation)


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Pixels as stored → upright (``rotation``: counter-clockwise degrees)."""
    if rotation == 90:
        image = cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    elif rotation == 180:
        image = cv2.rotate(image, cv2.ROTATE_180)
    elif rotation == 270:
        image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


def read_video(container: Any, stride: int = 1,
               name: str = "video") -> Iterator[Frame | Lost]:
    """The frames of ``container``'s first video stream, decoded in order (every
    ``stride``-th converted to pixels), and a :class:`Lost` before the first frame
    decoded after each stretch that could not be, and at the end for frames the
    container declares but that never came. Closes the container when done.
    ``name`` names the video in warnings.

    Frames are lost when their packets fail to decode or when the demuxer stops early
    (a file cut short): a packet whose timestamp no decoded frame reached is lost, and
    so is a frame the decoder flags as corrupt (damage it concealed: its pixels are
    not the video's).
    """
    import av

    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        reader = _Reader(stream, container, name)
        # Matroska/WebM demuxers skip damaged data to the next readable block without a
        # word: every stream is demuxed so that the bytes skipped show (a gap between
        # one packet's end and the next packet's start).
        resyncs = "matroska" in container.format.name
        # MPEG-TS too, but its packets are spread over 188-byte cells: there, a jump in
        # the timestamps (the format is constant-rate in practice) shows the skip.
        by_time = container.format.name == "mpegts"
        packets = container.demux() if resyncs else container.demux(stream)
        while True:
            t0 = time.perf_counter()
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:  # the container itself is damaged or cut short
                reader.why = f"the file breaks off ({exc.strerror or exc})"
                break
            if resyncs:
                yield from reader.skipped(packet)
                if packet.stream.index != stream.index:
                    continue
            if by_time:
                yield from reader.jumped(packet)
            reader.demuxed(packet)
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                reader.undecodable(packet)  # its pts stays pending: reported lost when a
                continue  # later frame comes (or at the end)
            for frame in decoded:
                yield from reader.frame(frame, stride, t0)
                t0 = time.perf_counter()
        for frame in _flush(stream):
            yield from reader.frame(frame, stride, time.perf_counter())
        yield from reader.end()
    finally:
        container.close()


class _Reader:
    """The bookkeeping of :func:`read_video`: frame numbers, times, lost packets.

    Timestamps are kept on one timeline: when a stream's timestamps restart (MPEG-TS
    files joined end to end), the later ones are moved on to follow the earlier
    (logged as a warning). In AVI, whose packets carry decode-order numbers, a frame's
    time is its number over the frame rate and losses are counted, not placed.
    """

    def __init__(self, stream: Any, container: Any, name: str) -> None:
        self.name = name
        self.base: Fraction = stream.time_base or Fraction(1, 1)
        self.origin: int | None = stream.start_time
        self.declared = int(stream.frames) or None
        self.duration: int | None = stream.duration
        self.rate = _rate(stream)
        # the container's duration (microseconds) stands for the video's when the video
        # is all it holds (with audio, it may be the audio's)
        self.total_s = (container.duration / 1e6 if container.duration and
                        len(container.streams) == 1 else None)
        self.ordered = container.format.name != "avi"  # pts in presentation order
        self.reset_ticks = int(1 / self.base)  # a step back of 1 s: the timestamps restart
        self.end_byte: int | None = None  # where the last packet demuxed ends in the file
        self.video_index = stream.index
        self.last_video: int | None = None  # pts (on the timeline) of the last packet
        self.intervals: list[int] = []  # recent pts steps between video packets
        self.pending: list[int] = []  # pts of packets demuxed, no frame yet (a heap)
        self.queued: set[int] = set()  # the same, to leave out repeated timestamps
        self.index = self.packets = self.failed = 0
        self.last: int | None = None  # the pts (on the timeline) of the last frame decoded
        self.last_raw: int | None = None  # ... as the decoder gave it
        self.demux_offset = self.out_offset = 0
        self.resets: list[int] = []  # offsets the demuxer side took, for the output side
        self.why = "damaged data"
        self.broken_from: int | None = None  # frames after this pts depend on lost ones
        self.broken_unplaced = False  # lost frames whose place is unknown (AVI)
        self.corrupt_at: int | None = None  # the packet count at the last corrupt packet

    def seconds(self, pts: int | None) -> float | None:
        if pts is None:
            return None
        return round(float((pts - (self.origin or 0)) * self.base), 6)

    def step(self) -> int:
        """The median of the recent steps between video packets' pts (0: unknown)."""
        return sorted(self.intervals)[len(self.intervals) // 2] if self.intervals else 0

    def timeline(self, pts: int) -> int:
        """A demuxed packet's pts on the timeline (following a restart)."""
        last = self.last_video
        if last is not None and pts + self.demux_offset < last - self.reset_ticks:
            jump = last + (self.step() or 1) - (pts + self.demux_offset)
            self.demux_offset += jump
            self.resets.append(self.demux_offset)
            log.warning("%s: the timestamps restart after %.3f s (files joined?); the times "
                        "go on from there", self.name, self.seconds(last))
        return pts + self.demux_offset

    def demuxed(self, packet: Any) -> None:
        if not packet.size:
            return
        self.packets += 1
        if packet.pts is None or not self.ordered:
            return
        pts = self.timeline(packet.pts)
        if pts in self.queued or (self.last is not None and pts <= self.last):
            return  # a repeated timestamp: one frame will come for all of them
        heapq.heappush(self.pending, pts)
        self.queued.add(pts)
        if self.last_video is not None and pts > self.last_video:
            self.intervals = [*self.intervals[-15:], pts - self.last_video]
        self.last_video = max(pts, self.last_video or pts)

    def undecodable(self, packet: Any) -> None:
        """``packet`` failed to decode: what follows depends on it until a key frame."""
        self.failed += 1
        if packet.pts is not None and self.ordered:
            self.mark_broken(packet.pts + self.demux_offset)
        else:
            self.broken_unplaced = True

    def mark_broken(self, pts: int) -> None:
        self.broken_from = pts if self.broken_from is None else min(self.broken_from, pts)

    def jumped(self, packet: Any) -> Iterator[Lost]:
        """Frames missing before ``packet`` by its timestamp: more than 2.5 recent
        frame intervals since the last video packet, within 8 packets of one the
        demuxer flags corrupt (MPEG-TS: its continuity counter broke)."""
        step = self.step()
        if not packet.size or packet.pts is None or self.last_video is None \
                or len(self.intervals) < 4 or not step:
            return
        pts = packet.pts + self.demux_offset
        # a jump where the demuxer found the packets' continuity broken, a few packets
        # before (a clean file whose timestamps jump on purpose has no such break; two
        # recordings joined with a pause between them do, and are reported)
        if packet.is_corrupt:
            self.corrupt_at = self.packets
        recent = self.corrupt_at is not None and self.packets - self.corrupt_at <= 8
        if pts - self.last_video > 2.5 * step and recent:
            count = round((pts - self.last_video) / step) - 1
            self.mark_broken(self.last_video + step)
            yield Lost(self.index, count, self.seconds(self.last_video + step),
                       self.seconds(pts - step), f"damaged data (the timestamps jump where "
                       f"the stream's continuity breaks; about {count} frame(s))")

    def skipped(self, packet: Any) -> Iterator[Lost]:
        """A stretch of bytes the demuxer skipped before ``packet`` (more than
        :data:`SKIP_BYTES`): the video frames in it are lost (their number estimated
        from the recent frame interval)."""
        if not packet.size or packet.pos is None or packet.pos < 0:
            return
        gap = packet.pos - self.end_byte if self.end_byte is not None else 0
        self.end_byte = packet.pos + packet.size
        if gap <= SKIP_BYTES or packet.stream.index != self.video_index \
                or packet.pts is None or self.last_video is None:
            return
        step = self.step()
        pts = packet.pts + self.demux_offset
        count = max(1, round((pts - self.last_video) / step) - 1) if step else 1
        self.mark_broken(self.last_video + step)
        yield Lost(self.index, count, self.seconds(self.last_video + step),
                   self.seconds(pts - step),
                   f"damaged data ({gap} bytes skipped by the demuxer; about {count} "
                   "frame(s))")

    def lost_before(self, pts: int | None) -> Iterator[Lost]:
        """The pending packets before ``pts`` (None: all): no frame came for them."""
        gone = []
        while self.pending and (pts is None or self.pending[0] < pts):
            gone.append(heapq.heappop(self.pending))
            self.queued.discard(gone[-1])
        if gone:
            self.mark_broken(gone[0])
            yield Lost(self.index, len(gone), self.seconds(gone[0]), self.seconds(gone[-1]),
                       self.why)

    def output_pts(self, raw: int | None) -> int | None:
        """A decoded frame's pts on the timeline."""
        if raw is None:
            return None
        if self.last_raw is not None and raw < self.last_raw - self.reset_ticks:
            self.out_offset = self.resets.pop(0) if self.resets else self.out_offset
        self.last_raw = raw
        return raw + self.out_offset

    def frame(self, frame: Any, stride: int, t0: float) -> Iterator[Frame | Lost]:
        if not self.ordered:
            yield from self._unordered(frame, stride, t0)
            return
        pts = self.output_pts(frame.pts)
        if pts is not None and (self.last is None or pts > self.last):
            if self.origin is None:
                self.origin = pts
            yield from self.lost_before(pts)  # frames come in pts order: those never will
            if self.pending and self.pending[0] == pts:
                self.queued.discard(heapq.heappop(self.pending))
            self.last = pts
        after_loss = self.broken_from is not None and (pts is None or pts > self.broken_from)
        if frame.key_frame and after_loss:
            self.broken_from, after_loss = None, False  # decodes without the frames before
        yield from self._emit(frame, stride, t0, self.seconds(pts), after_loss)

    def _unordered(self, frame: Any, stride: int, t0: float) -> Iterator[Frame | Lost]:
        """AVI: times from frame numbers; failed packets reported before the next frame."""
        if self.failed:
            yield Lost(self.index, self.failed, None, None, self.why)
            self.failed, self.broken_unplaced = 0, True
        if frame.key_frame:
            self.broken_unplaced = False
        time_s = round(self.index / self.rate, 6) if self.rate else None
        yield from self._emit(frame, stride, t0, time_s, self.broken_unplaced)

    def _emit(self, frame: Any, stride: int, t0: float, time_s: float | None,
              after_loss: bool) -> Iterator[Frame | Lost]:
        if frame.is_corrupt or after_loss:
            why = ("damaged data (the decoder concealed it: not the video's pixels)"
                   if frame.is_corrupt else "it depends on frames lost before it (until "
                   "the next key frame, the decoder shows stale or concealed pixels)")
            yield Lost(self.index, 1, time_s, time_s, why, frame=self.index)
        else:
            image = pixels(frame) if self.index % stride == 0 else None
            yield Frame(self.index, time_s, image, time.perf_counter() - t0)
        self.index += 1

    def end(self) -> Iterator[Lost]:
        yield from self.lost_before(None)
        if not self.ordered and self.failed:
            yield Lost(self.index, self.failed, None, None, self.why, end=True)
        missing = (self.declared or 0) - max(self.packets, self.index)
        if missing > 0:
            end = self.seconds(self.duration + (self.origin or 0)) if self.duration else None
            yield Lost(self.index, missing, None, end, f"the container declares "
                       f"{self.declared} frames; the file ends before them", end=True)
            return
        step, last = self.step(), self.seconds(self.last_video)
        total = self.seconds(self.duration + (self.origin or 0)) if self.duration else \
            self.total_s
        if total is None or last is None or not step or self.demux_offset:
            return
        step_s = float(step * self.base)
        end = round(last + step_s, 6)
        if total - end > max(2 * step_s, 0.1):  # the container's duration says there is more
            yield Lost(self.index, round((total - end) / step_s), end, total,
                       f"the container lasts {total:.3f} s; the file ends at {end:.3f} s",
                       end=True)


def _flush(stream: Any) -> list[Any]:
    """What the decoder still holds at the end (after a demuxer that broke off)."""
    import av

    try:
        return list(stream.decode(None))
    except av.FFmpegError:
        return []
