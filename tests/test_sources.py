"""Input expansion: folders, content sniffing, globs, stdin, videos, limits."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from polling import wait_until

from axrun.errors import InputError
from axrun.images import decode_image
from axrun.sources import SourceOptions, expand, read_ahead


def write_image(path: Path, color=(0, 0, 255), size=(20, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.zeros((*size, 3), np.uint8)
    image[:] = color
    ok, data = cv2.imencode(".png" if path.suffix != ".jpg" else ".jpg", image)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def write_video(path: Path, frames: int, size=(64, 48), fps=10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), i * 10 % 256, np.uint8)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write_image(tmp_path / "b.png")
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "sub" / "c.png")
    write_image(tmp_path / "sub" / "deeper" / "d.png")
    write_image(tmp_path / "noext_image.png").rename(tmp_path / "noext_image")
    (tmp_path / "README.txt").write_text("skip me")
    (tmp_path / "fake.jpg").write_text("not an image")
    return tmp_path


def sources(items) -> list[str]:
    return [i.source for i in items]


def test_folder_is_recursive_sorted_and_sniffs_content(tree: Path) -> None:
    got = [os.path.relpath(s, tree) for s in sources(expand([str(tree)]))]
    assert got == ["a.jpg", "b.png", "fake.jpg", "noext_image", "sub/c.png", "sub/deeper/d.png"]


def test_a_named_file_is_always_an_input(tree: Path) -> None:
    (tree / "notes.md").write_text("not an image")
    (item,) = expand([str(tree / "notes.md")])
    with pytest.raises(InputError, match="not a decodable image"):
        item.load()


def test_fake_jpg_fails_at_decode(tree: Path) -> None:
    with pytest.raises(InputError) as info:
        decode_image(tree / "fake.jpg")
    assert info.value.kind == "decode"


def test_globs_and_missing_paths(tree: Path) -> None:
    got = sources(expand([str(tree / "**" / "*.png"), str(tree / "nothing*.jpg"),
                          str(tree / "missing.jpg")]))
    assert [os.path.relpath(s, tree) for s in got[:3]] == ["b.png", "sub/c.png",
                                                           "sub/deeper/d.png"]
    items = list(expand([str(tree / "nothing*.jpg"), str(tree / "missing.jpg")]))
    assert [i.error.kind for i in items] == ["not_found", "not_found"]


def test_stdin_lines_keep_spaces_and_unicode(tmp_path: Path) -> None:
    names = ["with space.png", "ünïcödé 猫.png", "plain.png"]
    for n in names:
        write_image(tmp_path / n)
    data = "".join(f"{tmp_path / n}\n" for n in names).encode() + b"\n"
    got = sources(expand(["-"], stdin=io.BytesIO(data)))
    assert got == [str(tmp_path / n) for n in names]
    assert all(i.error is None for i in expand(["-"], stdin=io.BytesIO(data)))


def test_only_a_stream_reading_stdin_or_a_pipe_may_wait(tmp_path: Path) -> None:
    # the engine's result-collecting thread does not read a stream that may wait
    write_image(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")
    assert expand(["-"], stdin=io.BytesIO(b"")).may_wait
    assert expand([str(tmp_path / "a.png"), str(tmp_path / "pipe.png")]).may_wait
    assert not expand([str(tmp_path / "a.png"), str(tmp_path / "none.png")]).may_wait


def test_stdin_nul_separated(tmp_path: Path) -> None:
    names = ["new\nline.png", "tab\t.png"]
    for n in names:
        write_image(tmp_path / n)
    data = b"\0".join(os.fsencode(tmp_path / n) for n in names) + b"\0"
    got = sources(expand(["-"], SourceOptions(null=True), io.BytesIO(data)))
    assert got == [str(tmp_path / n) for n in names]


def test_video_frames_stride_and_limit(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 9)
    items = list(expand([str(video)]))
    assert [i.frame for i in items] == list(range(9))
    assert items[3].time_s == pytest.approx(0.3) and items[3].load().shape == (48, 64, 3)
    assert [i.frame for i in expand([str(video)], SourceOptions(vid_stride=4))] == [0, 4, 8]
    assert len(list(expand([str(video), str(video)], SourceOptions(limit=11)))) == 11


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "axrun-test-reader"]


def test_read_ahead_keeps_order_and_stays_bounded() -> None:
    produced = []

    def numbers():
        for i in range(100):
            produced.append(i)
            yield i

    stream = read_ahead(numbers(), 3, "axrun-test-reader")
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    time.sleep(0.1)
    assert len(produced) <= 5 + 3 + 1  # consumed + waiting + the one being produced
    assert list(stream) == list(range(5, 100))
    assert wait_until(lambda: not reader_threads())


def test_read_ahead_passes_errors_on_and_stops_when_dropped() -> None:
    def failing():
        yield 1
        raise ValueError("cannot decode")

    stream = read_ahead(failing(), 2, "axrun-test-reader")
    assert next(stream) == 1
    with pytest.raises(ValueError, match="cannot decode"):
        next(stream)

    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()  # the source is closed, in the reader's own thread

    stream = read_ahead(endless(), 2, "axrun-test-reader")
    assert next(stream) == 0
    del stream  # the consumer walks away
    assert closed.wait(2.0) and wait_until(lambda: not reader_threads())


def test_broken_video_is_one_error_item(tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"\0" * 100)
    (item,) = expand([str(tmp_path / "bad.mp4")])
    assert item.error is not None and item.error.kind == "video"


def test_broken_symlink_in_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "ok.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    items = list(expand([str(tmp_path)]))
    assert sources(items) == [str(tmp_path / "dangling.png"), str(tmp_path / "ok.png")]
    with pytest.raises(InputError) as info:
        items[0].load()
    assert info.value.kind == "broken_symlink"


def test_empty_folder_is_an_error_record(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    (item,) = expand([str(tmp_path)])
    assert item.error is not None and item.error.kind == "not_found"


def test_an_unlistable_subfolder_is_recorded_and_the_walk_goes_on(tmp_path: Path,
                                                                 monkeypatch) -> None:
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "locked" / "b.png")
    write_image(tmp_path / "z.png")
    real = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(expand([str(tmp_path)]))
    assert [Path(i.source).name for i in items] == ["a.png", "locked", "z.png"]
    assert items[1].error.kind == "permission" and items[2].error is None


def test_names_that_are_not_utf8_are_read(tmp_path: Path) -> None:
    image = write_image(tmp_path / "ok.png")
    odd = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")  # how Python holds them
    os.rename(image, odd)
    video = write_video(tmp_path / "v.mp4", 3)
    odd_video = os.fsdecode(os.fsencode(tmp_path) + b"/v\xe9.mp4")
    os.rename(video, odd_video)
    items = list(expand([str(tmp_path)]))
    assert [i.source for i in items] == [odd] + [odd_video] * 3
    assert items[0].load().shape == (20, 30, 3) and items[1].error is None


def test_a_named_pipe_is_read_like_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "in.png"
    os.mkfifo(fifo)
    data = cv2.imencode(".png", np.full((6, 5, 3), 7, np.uint8))[1].tobytes()
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    assert decode_image(fifo).shape == (6, 5, 3)
    writer.join()


def test_a_name_with_a_nul_byte_is_not_found(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    with pytest.raises(InputError) as info:
        decode_image(f"{tmp_path}/a.png\0.png")
    assert info.value.kind == "not_found"


def test_stdin_without_separators_stays_bounded_and_goes_on(tmp_path: Path) -> None:
    # e.g. `axrun classify - < /dev/zero`: a "path" grew without end
    write_image(tmp_path / "a.png")
    data = b"x" * 300_000 + b"\n" + os.fsencode(tmp_path / "a.png") + b"\n"
    first, second = expand(["-"], stdin=io.BytesIO(data))
    assert first.error is not None and "not a file name" in str(first.error)
    assert len(first.source) < 100
    assert second.source == str(tmp_path / "a.png") and second.error is None
