"""Dataset outputs of ``axrun detect``: YOLO label files, COCO results, crops; and
classify's annotated copies. Each checked against the records of the same run."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_sources import write_video
from typer.testing import CliRunner

from axrun.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / "models" / "samples"
runner = CliRunner()


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """The sample photos, one in a sub-folder, a grey picture (nothing to detect) and
    a file that is not an image."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for p in SAMPLES.glob("*.jpg"):
        shutil.copy(p, folder / ("sub" if p.stem == "chelsea" else "") / p.name)
    cv2.imwrite(str(folder / "grey.png"), np.full((120, 160, 3), 128, np.uint8))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


def run(*args: str) -> tuple[int, list[dict], str]:
    result = runner.invoke(app, ["detect", *args])
    return result.exit_code, records(result.stdout), result.stderr


def test_yolo_labels_round_trip_to_the_records_boxes(photos: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    code, recs, err = run(str(photos), "--save-txt", str(labels), "--save-conf")
    assert code == 1, err  # broken.jpg failed
    files = sorted(p.relative_to(labels).as_posix() for p in labels.rglob("*.txt"))
    assert files == ["astronaut.txt", "camera.txt", "coffee.txt", "grey.txt", "rocket.txt",
                     "stereo_motorcycle.txt", "sub/chelsea.txt"]  # no file for broken.jpg
    assert (labels / "grey.txt").read_text() == ""  # looked at, nothing found
    checked = 0
    for rec in recs:
        if "error" in rec:
            continue
        rel = Path(rec["source"]).relative_to(photos).with_suffix(".txt")
        lines = (labels / rel).read_text().splitlines()
        assert len(lines) == len(rec["detections"])
        w, h = rec["width"], rec["height"]
        for line, det in zip(lines, rec["detections"], strict=True):
            cls, cx, cy, bw, bh, conf = line.split()
            assert int(cls) == det["id"]
            box = [(float(cx) - float(bw) / 2) * w, (float(cy) - float(bh) / 2) * h,
                   (float(cx) + float(bw) / 2) * w, (float(cy) + float(bh) / 2) * h]
            assert np.allclose(box, det["box"], atol=1.0), (box, det["box"])
            assert float(conf) == pytest.approx(det["score"], abs=1e-5)
            checked += 1
    assert checked >= 8
    assert f"wrote {labels}/ (7 label file(s))" in err


def test_yolo_labels_without_scores_and_one_per_video_frame(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.mp4", frames=5, size=(160, 96), fps=10)
    labels = tmp_path / "labels"
    code, _, err = run(str(clip), "--save-txt", str(labels))
    assert code == 0, err
    assert sorted(p.name for p in labels.glob("*.txt")) == [f"clip_{i:06d}.txt"
                                                            for i in range(5)]
    for line in (labels / "clip_000000.txt").read_text().splitlines():
        assert len(line.split()) == 5  # class cx cy w h, no score


def test_save_conf_needs_save_txt(photos: Path) -> None:
    code, _, err = run(str(photos), "--save-conf")
    assert code == 2 and "--save-txt" in err


def test_two_inputs_with_one_label_name_the_later_gets_an_error_record(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", folder / "a.jpg")
    cv2.imwrite(str(folder / "a.png"), cv2.imread(str(SAMPLES / "chelsea.jpg")))
    shutil.copy(SAMPLES / "camera.jpg", folder / "b.jpg")
    labels = tmp_path / "labels"
    code, recs, err = run(str(folder), "--save-txt", str(labels))
    assert code == 1, err  # the run went on to b.jpg
    by_name = {Path(r["source"]).name: r for r in recs}
    assert by_name["a.png"]["error"]["type"] == "output"
    assert "a.txt was written for" in by_name["a.png"]["error"]["message"]
    assert by_name["a.jpg"]["detections"] and by_name["b.jpg"]["detections"]
    # the first one's labels are there, and are its own (a cup, not a cat)
    assert {int(line.split()[0]) for line in (labels / "a.txt").read_text().splitlines()} \
        == {41, 60}
    assert (labels / "b.txt").is_file()
    assert "1 failed (output 1)" in err and f"wrote {labels}/ (2 label file(s))" in err


def test_a_rerun_replaces_only_what_it_made_from_the_same_inputs(tmp_path: Path) -> None:
    batch1, batch2 = tmp_path / "batch1", tmp_path / "batch2"
    batch1.mkdir()
    batch2.mkdir()
    shutil.copy(SAMPLES / "astronaut.jpg", batch1 / "img001.jpg")
    shutil.copy(SAMPLES / "coffee.jpg", batch2 / "img001.jpg")
    labels, crops = tmp_path / "labels", tmp_path / "crops"
    out = ["--save-txt", str(labels), "--save-crop", str(crops), "-q"]
    assert run(str(batch1), *out)[0] == 0
    first = (labels / "img001.txt").read_text()
    assert run(str(batch1), *out)[0] == 0  # the same input again: fine
    # another input with the same name: refused, nothing replaced
    code, _, err = run(str(batch2), *out[:-1])  # not quiet
    assert code == 2 and "was made from" in err and "--overwrite" in err
    assert "stopped early (error)" in err  # the summary comes first
    assert (labels / "img001.txt").read_text() == first
    code, recs, err = run(str(batch2), *out, "--overwrite")
    assert code == 0, err
    assert (labels / "img001.txt").read_text() != first
    # the coffee's crops are all there; the astronaut's, under names nothing replaced,
    # stay (crops of several runs may be gathered in one folder)
    crops_now = sorted(p.relative_to(crops).as_posix() for p in crops.rglob("*.jpg"))
    assert crops_now == sorted(["person/img001_0.jpg"] + [
        f"{d['label']}/img001_{k}.jpg" for k, d in enumerate(recs[0]["detections"])])


def test_files_an_input_no_longer_gets_are_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLES / "stereo_motorcycle.jpg", folder / "a.jpg")
    labels, crops = tmp_path / "labels", tmp_path / "crops"
    out = ["--save-txt", str(labels), "--save-crop", str(crops), "-q"]
    assert run(str(folder), *out, "--conf", "0.05")[0] == 0
    many = sorted(crops.rglob("*.jpg"))
    code, recs, _ = run(str(folder), *out, "--conf", "0.5")
    assert code == 0 and len(recs[0]["detections"]) < len(many)
    assert len(sorted(crops.rglob("*.jpg"))) == len(recs[0]["detections"])
    # the input now fails: its label file and crops go, as the record says
    (folder / "a.jpg").write_bytes(b"broken")
    code, recs, _ = run(str(folder), *out)
    assert code == 1 and "error" in recs[0]
    assert not (labels / "a.txt").exists() and not list(crops.rglob("*.jpg"))


COCO_RESULT_FIELDS = {"image_id": int, "category_id": int, "bbox": list, "score": float}


def test_coco_results_and_image_index(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.coco.json"
    jsonl = tmp_path / "r.jsonl"
    code, _, err = run(str(photos), "-o", str(out), "-q")
    assert code == 1, err
    runner.invoke(app, ["detect", str(photos), "-o", str(jsonl), "-q"])
    recs = records(jsonl.read_text())
    results = json.loads(out.read_text())
    index = json.loads((tmp_path / "preds.images.json").read_text())
    # the COCO results format: a list of objects with exactly these fields and types
    assert isinstance(results, list) and results
    for r in results:
        assert set(r) == set(COCO_RESULT_FIELDS)
        assert all(isinstance(r[k], t) for k, t in COCO_RESULT_FIELDS.items())
        assert len(r["bbox"]) == 4 and r["bbox"][2] >= 0 and r["bbox"][3] >= 0
    assert set(index) == {"images", "categories"}
    labels = (Path(__file__).resolve().parents[2] / "axrun" / "models" / "yolox-nano-coco"
              / "labels.txt").read_text().splitlines()
    assert index["categories"] == [{"id": i, "name": n} for i, n in enumerate(labels)]
    images = {i["id"]: i for i in index["images"]}
    assert len(images) == len(index["images"]) == len(recs) - 1  # the broken one left out
    # ids follow the records (1, 2, 3... in input order); boxes as x, y, width, height
    for image_id, rec in enumerate(recs, start=1):
        if "error" in rec:
            assert image_id not in images
            continue
        assert images[image_id] == {"id": image_id, "file_name": rec["source"],
                                    "width": rec["width"], "height": rec["height"]}
        mine = [r for r in results if r["image_id"] == image_id]
        assert len(mine) == len(rec["detections"])
        for r, det in zip(mine, rec["detections"], strict=True):
            x, y, w, h = r["bbox"]
            assert np.allclose([x, y, x + w, y + h], det["box"], atol=0.02)
            assert r["category_id"] == det["id"] and r["score"] == det["score"]


def test_coco_results_are_refused_for_classify_and_never_replace_an_index(
        photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.coco.json"
    result = runner.invoke(app, ["classify", str(photos), "-o", str(out)])
    assert result.exit_code == 2 and "only detection" in result.stderr
    assert "plan:" not in result.stderr  # refused before the model was opened
    (tmp_path / "preds.images.json").write_text("mine")
    code, _, err = run(str(photos), "-o", str(out))
    assert code == 2 and "preds.images.json already exists" in err
    assert (tmp_path / "preds.images.json").read_text() == "mine"
    code, _, err = run(str(photos), "-o", str(out), "--overwrite", "-q")
    assert code == 1 and json.loads((tmp_path / "preds.images.json").read_text())["images"]


def test_crops_one_per_box_with_the_box_size(photos: Path, tmp_path: Path) -> None:
    crops = tmp_path / "crops"
    code, recs, err = run(str(photos), "--save-crop", str(crops))
    assert code == 1, err
    written = sorted(p for p in crops.rglob("*") if p.is_file() and p.name != ".axrun-written")
    assert len(written) == sum(len(r.get("detections", [])) for r in recs)
    for rec in recs:
        for k, det in enumerate(rec.get("detections", [])):
            rel = Path(rec["source"]).relative_to(photos)
            path = crops / det["label"] / rel.with_name(f"{rel.stem}_{k}{rel.suffix}")
            crop = cv2.imread(str(path))
            x1, y1, x2, y2 = det["box"]
            assert crop.shape[:2] == (math.ceil(y2) - math.floor(y1),
                                      math.ceil(x2) - math.floor(x1))
            original = cv2.imread(str(rec["source"]))
            top, left = math.floor(y1), math.floor(x1)
            assert np.abs(crop.astype(int) - original[top:top + crop.shape[0],
                                                      left:left + crop.shape[1]]).mean() < 4


def test_classify_annotated_copies_show_the_top_classes(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "ann"
    result = runner.invoke(app, ["classify", str(photos), "--save-dir", str(out)])
    assert result.exit_code == 1, result.output
    original = cv2.imread(str(photos / "coffee.jpg"))
    copy = cv2.imread(str(out / "coffee.jpg"))
    assert copy.shape == original.shape
    diff = np.abs(copy.astype(int) - original).sum(axis=2) > 40
    ys, xs = np.nonzero(diff)
    # the overlay is in the top-left corner; the rest of the picture is untouched
    assert diff.any() and ys.max() < original.shape[0] // 3 and xs.max() < original.shape[1]
    assert not diff[original.shape[0] // 3:].any()
    assert (out / "sub" / "chelsea.jpg").is_file() and not (out / "broken.jpg").exists()
    assert f"wrote {out}/ (7 annotated image(s))" in result.stderr


def test_replacing_another_inputs_file_takes_its_other_files_along(tmp_path: Path) -> None:
    from axrun.errors import UsageError
    from axrun.outputs import OutputFolder, item_key

    root = tmp_path / "out"
    first = OutputFolder(root, "crops folder")
    for name in ("cat/a_0.jpg", "dog/a_1.jpg"):
        first.claim(Path(name), item_key("one/a.jpg"), "one/a.jpg").parent.mkdir(
            parents=True, exist_ok=True)
        (root / name).write_bytes(b"one")
    first.close()
    with pytest.raises(UsageError, match="made from one/a.jpg by an earlier run"):
        OutputFolder(root, "crops folder").claim(Path("cat/a_0.jpg"), "two/a.jpg",
                                                 "two/a.jpg")
    again = OutputFolder(root, "crops folder", replace_others=True)
    assert again.claim(Path("cat/a_0.jpg"), item_key("two/a.jpg"), "two/a.jpg") \
        == root / "cat" / "a_0.jpg"
    assert not (root / "dog" / "a_1.jpg").exists()  # one/a.jpg's other crop went
