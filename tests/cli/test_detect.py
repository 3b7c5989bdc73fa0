"""``axrun detect`` through the CLI on the bundled YOLOX-Nano."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import cv2
import pytest
from test_sources import write_video
from typer.testing import CliRunner

from axrun.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / "models" / "samples"
runner = CliRunner()


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sample_records() -> dict[str, dict]:
    result = runner.invoke(app, ["detect", str(SAMPLES), "-q"])
    assert result.exit_code == 0, result.output
    return {Path(r["source"]).stem: r for r in records(result.stdout)}


@pytest.mark.parametrize(("photo", "label"), [("astronaut", "person"), ("camera", "person"),
                                              ("coffee", "cup"), ("chelsea", "cat"),
                                              ("stereo_motorcycle", "motorcycle")])
def test_real_photos(sample_records, photo: str, label: str) -> None:
    labels = [d["label"] for d in sample_records[photo]["detections"]]
    assert label in labels, labels


def test_boxes_are_in_original_pixels_and_clipped(sample_records) -> None:
    for rec in sample_records.values():
        for d in rec["detections"]:
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 < x2 <= rec["width"] and 0 <= y1 < y2 <= rec["height"]
            assert d["id"] >= 0 and 0 < d["score"] <= 1


def test_no_detections_still_gets_a_record(sample_records) -> None:
    assert sample_records["rocket"]["detections"] == []


def test_filters(tmp_path: Path) -> None:
    photo = str(SAMPLES / "astronaut.jpg")
    only = records(runner.invoke(app, ["detect", photo, "--classes", "person", "-q"]).stdout)
    assert {d["label"] for d in only[0]["detections"]} == {"person"}
    by_id = records(runner.invoke(app, ["detect", photo, "--classes", "0", "-q"]).stdout)
    assert by_id == only
    none = records(runner.invoke(app, ["detect", photo, "--conf", "0.99", "-q"]).stdout)
    assert none[0]["detections"] == []
    one = records(runner.invoke(app, ["detect", photo, "--max-det", "1", "--conf", "0.05",
                                      "-q"]).stdout)
    assert len(one[0]["detections"]) == 1
    bad = runner.invoke(app, ["detect", photo, "--classes", "unicorn"])
    assert bad.exit_code == 2 and "unknown class 'unicorn'" in bad.stderr


def test_save_dir_mirrors_subfolders_atomically(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(SAMPLES / "coffee.jpg", src / "coffee.jpg")
    shutil.copy(SAMPLES / "astronaut.jpg", src / "sub" / "astronaut.jpg")
    (src / "sub" / "broken.jpg").write_bytes(b"x")
    out = tmp_path / "out"
    result = runner.invoke(app, ["detect", str(src), "--save-dir", str(out), "-q"])
    assert result.exit_code == 1  # the broken file
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
                   and p.name != ".axrun-written")
    assert files == ["coffee.jpg", "sub/astronaut.jpg"]
    annotated = cv2.imread(str(out / "sub" / "astronaut.jpg"))
    original = cv2.imread(str(src / "sub" / "astronaut.jpg"))
    assert annotated.shape == original.shape
    assert (cv2.absdiff(annotated, original) > 40).any()  # boxes were drawn


def test_annotated_video_keeps_frames_size_and_fps(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 12, size=(160, 96), fps=15.0)
    out = tmp_path / "out"
    result = runner.invoke(app, ["detect", str(video), "--save-dir", str(out), "-q"])
    assert result.exit_code == 0, result.output
    recs = records(result.stdout)
    assert [r["frame"] for r in recs] == list(range(12))
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) \
        == (160, 96)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(15.0)
    cap.release()
    assert not list(out.glob("*.partial*"))  # no partial files left


def test_csv_has_one_row_per_detection(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    runner.invoke(app, ["detect", str(SAMPLES / "rocket.jpg"), str(SAMPLES / "camera.jpg"),
                        "-o", str(out), "-q"])
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[0]["source"].endswith("rocket.jpg") and rows[0]["label"] == ""
    assert any(r["label"] == "person" and float(r["x2"]) > float(r["x1"]) for r in rows[1:])


def test_wrong_task_and_out_of_range_classes_are_usage_errors() -> None:
    result = runner.invoke(app, ["classify", "-m", "yolox-nano-coco", str(SAMPLES)])  # by name
    assert result.exit_code == 2 and "is a detect model" in result.stderr
    result = runner.invoke(app, ["detect", str(SAMPLES), "--classes", "999"])
    assert result.exit_code == 2 and "below 80" in result.stderr


def test_save_names_are_the_inputs_paths_and_files_are_readable(tmp_path: Path) -> None:
    # cam1/frame.jpg and cam2/frame.jpg: named by their paths from the inputs' common
    # folder, the same in a run, a limited run resumed, and a rerun (not frame-2.jpg,
    # which depended on what the process had seen: a resume replaced cam1's copy)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(SAMPLES / "astronaut.jpg", tmp_path / sub / "x.jpg")
    inputs = [str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b" / "x.jpg")]
    out, out2 = tmp_path / "out", tmp_path / "out2"
    result = runner.invoke(app, ["detect", *inputs, "--save-dir", str(out), "-q"])
    assert result.exit_code == 0
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
    assert names == ["a/x.jpg", "b/x.jpg"]
    assert (out / "a" / "x.jpg").stat().st_mode & 0o044 == 0o044  # not private to the owner
    results = tmp_path / "r.jsonl"
    for more in (["--limit", "1"], ["--resume"]):
        assert runner.invoke(app, ["detect", *inputs, "--save-dir", str(out2), "-q", "-o",
                                   str(results), *more]).exit_code == 0
    assert sorted(str(p.relative_to(out2)) for p in out2.rglob("*.jpg")) == names


def test_a_video_cut_short_is_kept_as_partial(tmp_path: Path) -> None:
    import numpy as np

    from axrun.annotate import SaveDir
    from axrun.results import Detections, Result
    from axrun.sources import Item

    saver = SaveDir(tmp_path)
    frame = np.zeros((48, 64, 3), np.uint8)
    for i in range(3):
        saver.write(Result(Item("clip.mp4", frame=i, image=frame, fps=10.0),
                           Detections.empty()))
    saver.close(complete=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".axrun-written",
                                                         "clip.partial.mp4"]
    resumed = SaveDir(tmp_path)
    resumed.write(Result(Item("clip.mp4", frame=3, image=frame, fps=10.0),
                              Detections.empty()))
    resumed.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".axrun-written", "clip.from-3.mp4", "clip.partial.mp4"]
