"""Video as phones, browsers and damaged disks give it: every frame at its presentation
time, upright, and every frame lost said so in a record (exit status 1), never a run
that ends early with exit 0."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import damage, level, truncate, write_video
from typer.testing import CliRunner

from axrun.cli import app
from axrun.sources import expand


def read(path: Path) -> list:
    return list(expand([str(path)]))


def frames(items: list) -> list:
    return [i for i in items if i.error is None]


def errors(items: list) -> list:
    return [i for i in items if i.error is not None]


def test_variable_frame_rate_times_are_the_presentation_times(tmp_path) -> None:
    # 10 frames at 10 fps, then 20 at 30 fps (a phone recording slowing down and up):
    # index / average rate was off by up to 0.45 s here
    times = [i / 10 for i in range(10)] + [1.0 + i / 30 for i in range(20)]
    got = read(write_video(tmp_path / "vfr.mp4", times))
    assert [i.frame for i in got] == list(range(30))
    np.testing.assert_allclose([i.time_s for i in got], times, atol=1e-6)
    assert all(abs(int(i.load()[30, 40, 1]) - level(i.frame)) <= 3 for i in got)


def test_2997_fps_does_not_drift(tmp_path) -> None:
    rate = Fraction(30000, 1001)
    times = [float(i / rate) for i in range(300)]
    got = read(write_video(tmp_path / "ntsc.mp4", times, rate=rate))
    assert len(got) == 300 and got[-1].time_s == pytest.approx(299 * 1001 / 30000, abs=1e-6)


def test_webm_without_a_frame_rate_has_times_and_no_made_up_total(tmp_path) -> None:
    # as browsers record it: no rate in the container; OpenCV gave every time_s null and
    # a progress total of 1,396 for 40 frames
    path = write_video(tmp_path / "rec.webm", [i / 25 for i in range(40)], codec="libvpx",
                       container="webm")
    got = read(path)
    assert len(got) == 40 and got[1].time_s == pytest.approx(0.04) \
        and got[-1].time_s == pytest.approx(1.56)
    from axrun.cli.shared import CommonArgs, survey_inputs
    args = CommonArgs.__new__(CommonArgs)  # only what survey_inputs reads
    object.__setattr__(args, "inputs", [str(path)])
    object.__setattr__(args, "source_options", lambda: __import__(
        "axrun.sources", fromlist=["SourceOptions"]).SourceOptions())
    survey = survey_inputs(args, None)
    assert survey is not None and survey.total is None


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_phone_rotation_metadata_makes_frames_upright_as_opencv_did(tmp_path,
                                                                   rotation) -> None:
    path = write_video(tmp_path / "phone.mp4", [0, 1 / 30], size=(64, 48),
                       rate=Fraction(30), rotation=rotation)
    ok, expected = cv2.VideoCapture(str(path)).read()  # OpenCV applies the display matrix
    image = read(path)[0].load()
    assert ok and image.shape == expected.shape
    assert np.abs(image.astype(int) - expected).max() <= 4


@pytest.mark.parametrize(("container", "codec", "suffix"), [
    ("mp4", "libx264", "mp4"), ("matroska", "libx264", "mkv"), ("webm", "libvpx", "webm"),
    ("mpegts", "libx264", "ts")])
@pytest.mark.parametrize("fill", [None, b"\0"], ids=["random", "zeros"])
def test_damaged_data_is_skipped_and_every_lost_stretch_is_a_record(tmp_path, container,
                                                                    codec, suffix,
                                                                    fill) -> None:
    path = write_video(tmp_path / f"v.{suffix}", [i / 30 for i in range(100)],
                       size=(160, 120), codec=codec, container=container,
                       rate=None if container == "webm" else Fraction(30))
    got = read(damage(path, 0.4, 0.6, fill))
    good, bad = frames(got), errors(got)
    assert bad and all(i.error.kind == "video" and ("lost" in str(i.error) or
                                                    "damaged" in str(i.error)) for i in bad)
    assert len(good) + sum(_count(i) for i in bad) >= 98  # every frame accounted for
    assert [i.frame for i in good] == sorted(i.frame for i in good)
    # times stay the presentation times after the damage: frame k at k / 30 s, its
    # level telling which it is
    for item in good:
        shown = round(item.time_s * 30)
        assert abs(int(item.load()[60, 80, 1]) - level(shown)) <= 6, (item.frame, shown)


def test_after_damage_frames_come_back_from_the_next_key_frame(tmp_path) -> None:
    # Frames after a lost stretch show stale pixels until a key frame (H.264 conceals
    # without flagging them): records, not detections on the wrong pixels.
    path = write_video(tmp_path / "v.mp4", [i / 30 for i in range(100)], size=(160, 120),
                       rate=Fraction(30), gop=10)
    got = read(damage(path, 0.4, 0.6))
    good = frames(got)
    stale = [i for i in errors(got) if "depends on frames lost" in str(i.error)]
    assert stale and good[-1].frame > stale[-1].frame  # decoding recovered
    after = [i for i in good if i.frame > stale[-1].frame]
    assert round(after[0].time_s * 30) % 10 == 0  # from a key frame on
    for item in good:
        assert abs(int(item.load()[60, 80, 1]) - level(round(item.time_s * 30))) <= 6


def _count(item) -> int:
    text = str(item.error)
    if " damaged: " in text:
        return 1
    return int(text.split(": ", 1)[1].split(" frame(s)")[0])


@pytest.mark.parametrize(("container", "suffix"), [("matroska", "mkv"), ("webm", "webm")])
def test_a_file_cut_short_says_so_at_its_end(tmp_path, container, suffix) -> None:
    path = write_video(tmp_path / f"v.{suffix}", [i / 30 for i in range(100)],
                       size=(160, 120), codec="libvpx" if suffix == "webm" else "libx264",
                       container=container, rate=None if suffix == "webm" else Fraction(30))
    got = read(truncate(path, 0.5))
    assert 30 < len(frames(got)) < 70
    last = errors(got)[-1]
    assert got[-1] is last and "at the end" in str(last.error) and "container lasts" in \
        str(last.error)


def test_an_mp4_cut_before_its_index_is_an_error_record(tmp_path) -> None:
    got = read(truncate(write_video(tmp_path / "v.mp4", [i / 30 for i in range(60)],
                                    rate=Fraction(30)), 0.5))
    assert len(got) == 1 and "cut short" in str(got[0].error)


def test_the_command_exits_1_with_a_record_for_the_lost_frames(tmp_path) -> None:
    path = damage(write_video(tmp_path / "clip [1].mp4", [i / 30 for i in range(100)],
                              size=(160, 120), rate=Fraction(30)), 0.4, 0.6)
    result = CliRunner().invoke(app, ["classify", str(path), "-o", "-", "-q"])
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    failed = [r for r in records if "error" in r]
    assert failed and "frame(s) lost" in failed[0]["error"]["message"]
    assert result.stderr == ""  # -q: no libav chatter
    assert records[-1]["time_s"] == pytest.approx(3.3)  # the last frame, known by its time


def test_brackets_in_names(tmp_path) -> None:
    folder = tmp_path / "a [b]"
    folder.mkdir()
    write_video(folder / "c [d].mp4", [0, 0.1], rate=Fraction(10))
    shutil.copy(Path(__file__).parents[1] / "models" / "samples" / "coffee.jpg",
                folder / "e [f].jpg")
    got = read(folder)
    assert [Path(i.source).name for i in got] == ["c [d].mp4", "c [d].mp4", "e [f].jpg"]
    assert all(i.error is None for i in got)


def written(path: Path) -> tuple[str, str, tuple[int, int], list[float]]:
    """An annotated video's codec, pixel format, size and frame times."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [round(float(f.time), 4) for f in container.decode(stream)]
        return (stream.codec_context.name, stream.codec_context.pix_fmt,
                (stream.width, stream.height), times)


@pytest.mark.parametrize(("size", "codec"), [((64, 48), "h264"), ((65, 49), "vp9")])
def test_annotated_video_keeps_each_frames_time_and_the_exact_size(tmp_path, size,
                                                                   codec) -> None:
    times = [i / 10 for i in range(5)] + [0.5 + i / 30 for i in range(10)]
    path = write_video(tmp_path / "in.mkv", times, size=size, container="matroska",
                       codec="libx264" if codec == "h264" else "libvpx-vp9")
    result = CliRunner().invoke(app, ["detect", str(path), "--save-dir",
                                      str(tmp_path / "out"), "-q", "-o", "-"])
    assert result.exit_code == 0, result.stderr
    name, pix_fmt, got_size, got_times = written(tmp_path / "out" / "in.mp4")
    assert (name, pix_fmt, got_size) == (codec, "yuv420p", size)  # browser-playable
    np.testing.assert_allclose(got_times, times, atol=1e-3)


@pytest.mark.parametrize(("container", "codec", "suffix"), [
    ("avi", "libx264", "avi"), ("mpeg", "mpeg2video", "mpg"), ("mp4", "libx264", "mp4")])
def test_intact_videos_with_b_frames_lose_nothing(tmp_path, container, codec, suffix) -> None:
    # AVI numbers packets in decode order, MPEG-PS repeats timestamps: neither is damage
    # (a hostile review found 58 of 60 AVI frames reported lost)
    path = write_video(tmp_path / f"bf.{suffix}", [i / 30 for i in range(60)], size=(64, 48),
                       codec=codec, container=container, rate=Fraction(30), bframes=2)
    got = read(path)
    assert not errors(got) and [i.frame for i in got] == list(range(60))
    np.testing.assert_allclose([i.time_s for i in got], [i / 30 for i in range(60)],
                               atol=1e-6)
    assert all(abs(int(i.load()[30, 40, 1]) - level(i.frame)) <= 6 for i in got)


def test_joined_transport_streams_keep_one_timeline(tmp_path, caplog) -> None:
    one = write_video(tmp_path / "a.ts", [i / 30 for i in range(60)], size=(64, 48),
                      container="mpegts", rate=Fraction(30))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(one.read_bytes() * 2)
    got = read(joined)
    assert not errors(got) and len(got) == 120
    times = [i.time_s for i in got]
    assert times == sorted(times) and times[-1] == pytest.approx(119 / 30, abs=0.11)
    assert "timestamps restart" in caplog.text


def test_empty_and_misnamed_files(tmp_path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    video = write_video(tmp_path / "v.mp4", [0, 0.1], rate=Fraction(10))
    (tmp_path / "clip.jpg").write_bytes(video.read_bytes())
    (tmp_path / "photo.mp4").write_bytes(
        cv2.imencode(".png", np.full((20, 30, 3), 90, np.uint8))[1].tobytes())
    got = {Path(i.source).name: i for i in read(tmp_path) if i.source != str(video)}
    assert str(got["empty.mp4"].error) == f"{tmp_path / 'empty.mp4'}: empty (0 bytes)"
    with pytest.raises(Exception, match="not an image but an MP4/MOV video"):
        got["clip.jpg"].load()
    assert got["photo.mp4"].frame is None and got["photo.mp4"].load().shape == (20, 30, 3)
