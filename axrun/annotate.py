"""Annotated outputs: boxes drawn on images, saved as images or streamed into videos."""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, cast

import cv2
import numpy as np

from axrun.errors import OutputError, UsageError
from axrun.files import atomic_write
from axrun.outputs import ENCODABLE, OutputFolder, item_key, save_name
from axrun.results import Classification, Detections, Result


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hues)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def _box_pixels(box: Sequence[float], image_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    """The first and last pixel columns and rows (x1, y1, x2, y2, inclusive) a box covers
    inside the image; ``box`` is x1, y1, x2, y2 in pixels, x2 and y2 its far edges."""
    w, h = image_wh
    x1 = min(max(round(float(box[0])), 0), w - 1)
    y1 = min(max(round(float(box[1])), 0), h - 1)
    x2 = min(max(round(float(box[2])) - 1, x1), w - 1)
    y2 = min(max(round(float(box[3])) - 1, y1), h - 1)
    return x1, y1, x2, y2


def _outline(box: tuple[int, int, int, int], width: int) -> list[tuple[int, int, int, int]]:
    """The four strips (x0, y0, x1, y1, half-open) a box outline ``width`` pixels thick
    covers, drawn inwards from the box's edges (so it stays inside the box)."""
    x1, y1, x2, y2 = box
    inner_x, inner_y = min(x1 + width, x2 + 1), min(y1 + width, y2 + 1)
    return [(x1, y1, x2 + 1, inner_y), (x1, max(y2 + 1 - width, y1), x2 + 1, y2 + 1),
            (x1, y1, inner_x, y2 + 1), (max(x2 + 1 - width, x1), y1, x2 + 1, y2 + 1)]


MAX_STEPS = 16  # shifted candidates tried up and down from each of a box's top corners


def _candidates(box: tuple[int, int, int, int], size: tuple[int, int],
                image_wh: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners for a ``size`` (w, h) tag of ``box``, in order of preference,
    each moved into the image, without repeats."""
    x1, y1, x2, y2 = box
    w, h = size
    right = x2 + 1 - w  # right-aligned with the box
    spots = [(x, y) for x in (x1, right) for y in (y1 - h, y1, y2 + 1, y2 + 1 - h)]
    steps = min(MAX_STEPS, max(image_wh[1] // max(h, 1), 1))
    spots += [(x, y) for k in range(1, steps + 1) for x in (x1, right)
              for y in (y1 + k * h, y1 - h - k * h)]
    max_x, max_y = max(image_wh[0] - w, 0), max(image_wh[1] - h, 0)
    return list(dict.fromkeys((min(max(x, 0), max_x), min(max(y, 0), max_y))
                              for x, y in spots))


def place_labels(boxes_xyxy: np.ndarray, scores: np.ndarray,
                 sizes_wh: Sequence[tuple[int, int]], image_wh: tuple[int, int],
                 line_width: int = 1) -> list[tuple[int, int]]:
    """Where each box's tag goes: its top-left corner (x, y) in pixels, one per box, in
    the order of ``boxes_xyxy``.

    ``boxes_xyxy`` (N, 4): x1, y1, x2, y2 in pixels (x2, y2 the far edges, as in
    :class:`Detections`); ``scores`` (N,); ``sizes_wh``: each tag's width and height in
    pixels; ``image_wh``: the image's width and height in pixels; ``line_width``: the
    box outlines' width in pixels, drawn inside the boxes.

    Greedy, best score first. Each tag takes the first of these spots that overlaps no
    tag placed before it and no outline of a box with a higher score: above the box's
    top-left corner (outside), inside the top-left corner, below the bottom-left corner
    (outside), inside the bottom-left corner, the same four at the right corners
    (right-aligned with the box), then moved down from inside the top corners and up
    from above them, one tag height at a time (left before right). Every spot is first
    moved into the image (a tag wider or taller than the image starts at its left or
    top edge). When no spot is free, the one with the least overlap (in pixels²) wins.
    """
    n = len(boxes_xyxy)
    corners: list[tuple[int, int]] = [(0, 0)] * n
    taken = np.zeros((5 * n, 4), np.int64)  # placed tags and outline strips (half-open)
    m = 0
    for i in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        box = _box_pixels(boxes_xyxy[i], image_wh)
        w, h = (int(v) for v in sizes_wh[i])
        spots = np.array(_candidates(box, (w, h), image_wh), np.int64)
        best = 0
        t = taken[:m]
        t = t[(t[:, 0] < spots[:, 0].max() + w) & (t[:, 2] > spots[:, 0].min())
              & (t[:, 1] < spots[:, 1].max() + h) & (t[:, 3] > spots[:, 1].min())]
        if len(t):  # what lies where any of the spots reaches
            xs = (np.minimum(spots[:, :1] + w, t[:, 2]) - np.maximum(spots[:, :1], t[:, 0]))
            ys = (np.minimum(spots[:, 1:] + h, t[:, 3]) - np.maximum(spots[:, 1:], t[:, 1]))
            overlap = (np.clip(xs, 0, None) * np.clip(ys, 0, None)).sum(axis=1)
            best = int(np.argmin(overlap))  # the first free spot, else the least covered
        x, y = int(spots[best, 0]), int(spots[best, 1])
        corners[i] = (x, y)
        taken[m] = (x, y, x + w, y + h)
        taken[m + 1: m + 5] = _outline(box, line_width)
        m += 5
    return corners


class Tag(NamedTuple):
    """One box's tag: its text and where it is drawn (top-left corner and size, pixels)."""

    text: str
    x: int
    y: int
    width: int
    height: int


class BoxAnnotator:
    """Draws boxes with ``label score`` tags; line width and text scale follow the image
    size so the result is readable from thumbnails to 4K.

    ``line_width``: box outlines in pixels (None: about 1 per 300 pixels of the image's
    short side); ``show_labels=False`` draws the boxes only; ``show_conf=False`` tags
    with the label alone. Tags are placed by :func:`place_labels`: inside the image,
    clear of each other and of higher-score boxes' outlines where there is room.
    """

    def __init__(self, line_width: int | None = None, show_labels: bool = True,
                 show_conf: bool = True, *, font: int = cv2.FONT_HERSHEY_SIMPLEX) -> None:
        if line_width is not None and line_width < 1:
            raise ValueError(f"line_width must be at least 1 pixel, got {line_width}")
        self.line_width = line_width
        self.show_labels = show_labels
        self.show_conf = show_conf
        self.font = font

    def _style(self, image_wh: tuple[int, int]) -> tuple[int, float, int]:
        """Line width (pixels), text scale and text thickness for an image this size."""
        short = min(image_wh)
        line = self.line_width if self.line_width is not None else max(1, round(short / 300))
        scale = max(0.35, short / 900)
        return line, scale, max(1, round(scale * 1.5))

    def tags(self, detections: Detections, image_wh: tuple[int, int]) -> list[Tag]:
        """The tags :meth:`annotate` draws on an image of ``image_wh`` (width, height)
        pixels, one per detection in its order (none with ``show_labels=False``)."""
        if not self.show_labels or not len(detections):
            return []
        line, scale, thick = self._style(image_wh)
        texts = []
        for i in range(len(detections)):
            name = detections.label[i] if detections.label else str(int(detections.class_id[i]))
            texts.append(f"{name} {detections.confidence[i]:.2f}" if self.show_conf else name)
        sizes = []
        for text in texts:
            (tw, th), base = cv2.getTextSize(text, self.font, scale, thick)
            sizes.append((tw + 4, th + base + 2))
        corners = place_labels(detections.xyxy, detections.confidence, sizes, image_wh, line)
        return [Tag(text, x, y, w, h)
                for text, (x, y), (w, h) in zip(texts, corners, sizes, strict=True)]

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        """Draw on a copy of ``scene`` (BGR uint8) and return it: every box (best score
        last, so its outline is on top), then every tag (best last), so that no outline
        crosses a tag."""
        out = scene.copy()
        image_wh = (out.shape[1], out.shape[0])
        line, scale, thick = self._style(image_wh)
        order = np.argsort(detections.confidence, kind="stable")  # lowest score first
        colors = [class_color(int(c)) for c in detections.class_id]
        for i in order:
            for x0, y0, x1, y1 in _outline(_box_pixels(detections.xyxy[i], image_wh), line):
                cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colors[i], cv2.FILLED)
        tags = self.tags(detections, image_wh)
        for i in order if tags else ():
            tag, color = tags[i], colors[i]
            cv2.rectangle(out, (tag.x, tag.y), (tag.x + tag.width - 1, tag.y + tag.height - 1),
                          color, cv2.FILLED)
            luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
            ink = (0, 0, 0) if luminance > 150 else (255, 255, 255)
            (_, th), _ = cv2.getTextSize(tag.text, self.font, scale, thick)
            cv2.putText(out, tag.text, (tag.x + 2, tag.y + th + 1), self.font, scale, ink,
                        thick, cv2.LINE_AA)
        return np.asarray(out)


class ClassAnnotator:
    """Writes an image's top classes (``label score``, best first and largest) in its
    top-left corner, on a dark band so they read on any picture; text scale follows the
    image size as :class:`BoxAnnotator`'s does. ``top``: how many classes are written
    (at most the classification's k); ``show_conf=False`` writes labels alone."""

    def __init__(self, top: int = 3, show_conf: bool = True, *,
                 font: int = cv2.FONT_HERSHEY_SIMPLEX) -> None:
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        self.top, self.show_conf, self.font = top, show_conf, font

    def annotate(self, scene: np.ndarray, classification: Classification) -> np.ndarray:
        """Draw on a copy of ``scene`` (BGR uint8) and return it."""
        out = scene.copy()
        h, w = out.shape[:2]
        base_scale = max(0.4, min(h, w) / 700)
        y = 0
        for rank in range(min(self.top, len(classification))):
            label = classification.label[rank] if classification.label else \
                str(int(classification.class_id[rank]))
            text = f"{label} {classification.confidence[rank]:.2f}" if self.show_conf \
                else label
            scale = base_scale if rank == 0 else base_scale * 0.75
            thick = max(1, round(scale * 1.6))
            (tw, th), base = cv2.getTextSize(text, self.font, scale, thick)
            pad = max(2, round(th * 0.3))
            if y >= h:
                break
            band = out[y: y + th + base + 2 * pad, : tw + 2 * pad]
            band[:] = (band * 0.35).astype(np.uint8)  # darkened, the picture still shows
            cv2.putText(out, text, (pad, y + pad + th), self.font, scale, (255, 255, 255),
                        thick, cv2.LINE_AA)
            y += th + base + 2 * pad
        return np.asarray(out)


def _imwrite(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise UsageError(f"{path}: cannot encode {path.suffix} images")
    try:
        atomic_write(path, data.tobytes())
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc


# (codec, pixel format, options), best first: H.264 plays in every browser but needs
# even sides in 4:2:0; VP9 (in MP4: Chrome, Firefox, Edge, Safari 14+) keeps an odd
# size exact; MPEG-4 Part 2 is in every FFmpeg build (odd sides then lose a row or
# column). ultrafast + zerolatency: 191 frames/s at 1280x720 here (MPEG-4: 138, VP9
# realtime: 105), and every frame comes out of the encoder at once (no lookahead, no
# B-frames), so a killed run's file plays up to its last frame.
VIDEO_CODECS: tuple[tuple[str, str, dict[str, str], bool], ...] = (
    ("libx264", "yuv420p", {"preset": "ultrafast", "tune": "zerolatency"}, True),
    ("libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8", "row-mt": "1",
                               "lag-in-frames": "0"}, False),
    ("mpeg4", "yuv420p", {}, True),
)
TIME_BASE = Fraction(1, 90000)  # the MPEG clock: any frame time to 11 µs


def video_codec(size: tuple[int, int]) -> tuple[str, str, dict[str, str], bool]:
    """The first of :data:`VIDEO_CODECS` this FFmpeg build has that keeps ``size``
    (width, height) exact, else the first it has; the last item says whether the
    codec needs even sides."""
    import av

    odd = size[0] % 2 or size[1] % 2
    usable = []
    for codec in VIDEO_CODECS:
        try:
            av.codec.Codec(codec[0], "w")
        except (av.FFmpegError, ValueError):
            continue
        if not (odd and codec[3]):
            return codec
        usable.append(codec)
    if not usable:
        raise OutputError("this FFmpeg build (PyAV) has none of the video encoders "
                          f"{', '.join(c[0] for c in VIDEO_CODECS)}")
    return usable[0]


class _Video:
    """One annotated video being written frame by frame, through FFmpeg (PyAV) as a
    fragmented MP4 of one fragment per frame, flushed to the file as each is encoded:
    whatever stops the run, SIGKILL included, the file plays up to its last frame
    written. It is written as ``<name>.partial.mp4`` and renamed to ``<name>.mp4``
    when the video went through to its end.

    Each frame keeps its time (variable frame rates too), from the first frame's; the
    size is the input's (see :func:`video_codec`).
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av  # loaded with the first video written

        self.path = path
        self.partial = path.with_name(f"{path.stem}.partial{path.suffix}")
        self.codec, pix_fmt, options, even = video_codec(size)
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2) if even else size
        rate = Fraction(round(fps * 1000), 1000) if fps > 0 else Fraction(30)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(os.fsencode(self.partial), "wb", buffering=0)  # noqa: SIM115
            self._container = av.open(self._file, "w", format="mp4", options={
                "movflags": "frag_every_frame+empty_moov+default_base_moof",
                "flush_packets": "1"})
            self._stream: Any = cast(Any, self._container.add_stream(self.codec, rate=rate))
        except OSError as exc:
            raise OutputError(f"{self.partial}: cannot write ({exc.strerror or exc})") from exc
        except av.FFmpegError as exc:
            raise OutputError(f"{self.partial}: cannot write video ({exc})") from exc
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = pix_fmt
        self._stream.time_base = TIME_BASE
        self._stream.codec_context.time_base = TIME_BASE
        self._stream.options = options
        if self.codec == "mpeg4":  # about 0.2 bits per pixel: sharp boxes and text
            self._stream.bit_rate = max(400_000, int(self.size[0] * self.size[1] * rate * 0.2))
        self._av = av
        self._step = 1 / float(rate)
        self._first: float | None = None
        self._last_pts = -1
        self.frames = 0

    def write(self, frame: np.ndarray, time_s: float | None = None) -> None:
        """Add one BGR frame shown at ``time_s`` seconds (None: one frame interval
        after the last)."""
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = np.ascontiguousarray(frame[: self.size[1], : self.size[0]])
        if time_s is None:
            time_s = (self._first or 0.0) + self.frames * self._step
        if self._first is None:
            self._first = time_s
        pts = max(round((time_s - self._first) / TIME_BASE), self._last_pts + 1)
        try:
            picture = self._av.VideoFrame.from_ndarray(frame, format="bgr24")
            picture.pts, picture.time_base = pts, TIME_BASE
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        except (OSError, self._av.FFmpegError) as exc:
            raise OutputError(f"{self.partial}: cannot write ({exc})") from exc
        self._last_pts = pts
        self.frames += 1

    def close(self, complete: bool) -> Path:
        """Finish the file: under its name when the video went through to its end, as
        ``<name>.partial.mp4`` when the run stopped before (nothing is thrown away)."""
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._file.close()
            if complete:
                os.replace(self.partial, self.path)
        except (OSError, self._av.FFmpegError) as exc:
            raise OutputError(f"{self.partial}: cannot write ({exc})") from exc
        return self.path if complete else self.partial




class SaveDir:
    """``--save-dir``: annotated images, one annotated ``.mp4`` per video input with the
    source's frame rate and size, each at its input's path relative to
    ``inputs_root`` (see :func:`axrun.outputs.save_name`): distinct inputs get
    distinct names, the same in every run over the same inputs. A video that does not
    start at frame 0 (``--resume``) is written as ``<name>.from-<frame>.mp4``. Files
    are never written over anything but earlier annotated copies
    (:class:`~axrun.outputs.OutputFolder`).

    Detections are drawn by ``annotator`` (boxes and tags), classifications by
    ``labeler`` (the top classes in the image's top-left corner).
    """

    needs_images: ClassVar[bool] = True  # a sink (axrun.sinks.Sink) that draws on pixels

    def __init__(self, root: Path, annotator: BoxAnnotator | None = None,
                 vid_stride: int = 1, inputs_root: str | None = None,
                 labeler: ClassAnnotator | None = None, replace_others: bool = False) -> None:
        self.folder = OutputFolder(root, "save folder", replace_others)
        self.annotator = annotator or BoxAnnotator()
        self.labeler = labeler or ClassAnnotator()
        self.vid_stride = vid_stride
        self.inputs_root = inputs_root or os.getcwd()
        self._video: _Video | None = None
        self._video_source: str | None = None
        self.videos = 0

    def _target(self, result: Result, suffix: str | None = None) -> Path:
        """Where ``result``'s annotated copy goes (see :meth:`OutputFolder.claim`)."""
        rel = save_name(result.item.source, self.inputs_root)
        if result.item.page is not None:  # a page of a multi-page file: an image of its own
            rel = rel.with_name(f"{rel.stem}.page{result.item.page}{rel.suffix}")
        source = result.item.source
        if suffix is not None:  # a video, made from the whole input
            rel = rel.with_name(rel.stem + suffix)
            return self.folder.claim(rel, item_key(source), source,
                                     also=[rel.with_name(f"{rel.stem}.partial{rel.suffix}")])
        if rel.suffix.lower() not in ENCODABLE:
            rel = rel.with_name(rel.name + ".jpg")
        return self.folder.claim(rel, item_key(source, result.item.frame), source)

    def write(self, result: Result) -> None:
        """Annotate and save one result (errors and frames without pixels are skipped)."""
        item = result.item
        still = item.frame is None or item.page is not None  # an image, not a video frame
        if still:
            self._close_video()
        image = result.image if result.image is not None else item.image
        annotated = None
        if result.error is None and image is not None:
            if isinstance(result.prediction, Detections):
                annotated = self.annotator.annotate(image, result.prediction)
            elif isinstance(result.prediction, Classification):
                annotated = self.labeler.annotate(image, result.prediction)
        if still:
            if annotated is not None:
                _imwrite(self._target(result), annotated)
            # an earlier run's copy of an input that fails now is out of date
            self.folder.settle(item_key(item.source, item.frame))
            return
        if annotated is None:
            return
        if self._video_source != item.source:
            self._close_video()
            fps = (item.fps or 30.0) / self.vid_stride
            suffix = ".mp4" if item.frame == 0 else f".from-{item.frame}.mp4"
            self._video = _Video(self._target(result, suffix), fps,
                                 (annotated.shape[1], annotated.shape[0]))
            self._video_source = item.source
            self.videos += 1
        assert self._video is not None
        self._video.write(annotated, item.time_s)

    def _close_video(self, complete: bool = True) -> None:
        if self._video is not None:
            self._video.close(complete)
            self._video, self._video_source = None, None

    def close(self, complete: bool = True) -> None:
        """Finish the last video; ``complete=False`` when the run stopped early."""
        self._close_video(complete)
        self.folder.close()

    def written(self) -> str | None:
        """What was written, for the run's summary."""
        images = self.folder.files - self.videos
        if not self.folder.files:
            return None
        parts = [f"{images} annotated image(s)"] if images else []
        parts += [f"{self.videos} annotated video(s)"] if self.videos else []
        return f"{self.folder.root}{os.sep} ({', '.join(parts)})"
