"""JPEGs decoded at 1/2, 1/4 or 1/8 scale when the preprocessing shrinks them at least
that much: the same orientation, boxes in the original's pixels, and what the network
sees close to a full decode."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

import axrun
from axrun.cli import app
from axrun.images import decode_bytes_for

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "models" / "example-detect.jpg"


def jpeg(image_bgr: np.ndarray, orientation: int = 1, quality: int = 92) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(image_bgr[..., ::-1]).save(out, format="JPEG", quality=quality,
                                               exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_upright_at_a_reduced_scale(orientation) -> None:
    stored = np.zeros((240, 320, 3), np.uint8)
    stored[:60, :80] = (0, 0, 255)  # a red block in the stored top-left corner
    data = jpeg(stored, orientation)
    full = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))[..., ::-1]
    image, original = decode_bytes_for(data, "x.jpg", scale_for=lambda h, w: 0.3)
    assert original[:2] == (full.shape[1], full.shape[0])  # the upright original's size
    assert image.shape[:2] == (full.shape[0] // 2, full.shape[1] // 2)  # 1/2: >= 0.3
    shrunk = cv2.resize(full, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(image.astype(int) - shrunk).mean() < 4  # the block where a viewer shows it


@pytest.mark.parametrize(("factor", "scale"), [(0.9, 1), (0.5, 2), (0.3, 2), (0.2, 4),
                                                (0.125, 8), (0.01, 8)])
def test_the_largest_dct_scale_that_keeps_what_the_preprocessing_needs(factor,
                                                                       scale) -> None:
    data = jpeg(np.full((800, 1200, 3), 128, np.uint8))
    image, original = decode_bytes_for(data, "x.jpg", scale_for=lambda h, w: factor)
    assert original == (1200, 800, 1 / scale, 1 / scale)
    assert image.shape[:2] == (800 // scale, 1200 // scale)


def detections(folder: Path, decode: str) -> list[dict]:
    result = CliRunner().invoke(app, ["detect", str(folder), "-o", "-", "-q", "--decode",
                                      decode])
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def test_boxes_come_back_in_the_originals_pixels(tmp_path) -> None:
    # The photo 4x larger (phone size): the 416-pixel YOLOX input lets it be decoded at
    # 1/8. Its boxes must be the original photo's, times 4. (A full decode does worse
    # here: a 10x INTER_LINEAR downscale aliases; the cup came out at IoU 0.75.)
    big = cv2.resize(cv2.imread(str(PHOTO)), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "phone.jpg").write_bytes(jpeg(big))
    original = detections(PHOTO, "full")[0]
    reduced = detections(tmp_path / "big", "reduced")[0]
    assert (reduced["width"], reduced["height"]) == (big.shape[1], big.shape[0])
    wanted = [d for d in original["detections"] if d["score"] >= 0.5]
    assert len(wanted) >= 2
    for d in wanted:
        box = [v * 4 for v in d["box"]]
        best = max(iou(box, r["box"]) for r in reduced["detections"]
                   if r["label"] == d["label"])
        assert best >= 0.9, (d, reduced["detections"])


def test_a_jpeg_over_the_pixel_cap_is_read_when_the_network_needs_fewer(tmp_path,
                                                                       monkeypatch) -> None:
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", str(1_000_000))
    big = cv2.resize(cv2.imread(str(ROOT / "models" / "samples" / "coffee.jpg")), (2000, 1500))
    (tmp_path / "big.jpg").write_bytes(jpeg(big))
    with axrun.load(config=axrun.EngineConfig(decode="full")) as model:
        (full,) = model.predict([str(tmp_path / "big.jpg")])
    assert not full.ok and "over the cap of 1,000,000" in str(full.error)
    with axrun.load() as model:
        (reduced,) = model.predict([str(tmp_path / "big.jpg")])
    assert reduced.ok and reduced.classification.label[0] == "espresso"
    assert (reduced.geometry.width, reduced.geometry.height) == (2000, 1500)


def test_the_mapping_back_is_libjpegs_exact_where_it_rounds_the_size_up() -> None:
    # 4001 pixels at 1/8 decode to 501 (rounded up): decoded pixel x covers original
    # [8x, 8x + 8), so an edge at decoded 493 is at original 3944 (the size ratio,
    # 4001 / 501, put it at 3937)
    from axrun.preprocess import Geometry

    decoded = Geometry(501, 376, 0.5, 0.5, 0.0, 0.0)  # the network sees the decoded at 1/2
    mapped = decoded.of_original(4001, 3001, 1 / 8, 1 / 8)
    edge = np.array([[493 * 0.5, 0.0, 500 * 0.5, 10.0]], np.float32)
    np.testing.assert_allclose(mapped.to_original(edge)[0], [3944, 0, 4000, 160])


def test_an_orientation_stored_as_a_long_in_big_endian_exif() -> None:
    # Non-standard (the tag is a SHORT), but some writers do it; Pillow reads it
    import struct

    plain = jpeg(np.zeros((30, 40, 3), np.uint8))
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(
        ">HHII", 0x0112, 4, 1, 6) + struct.pack(">I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    data = plain[:2] + app1 + plain[2:]
    image, original = decode_bytes_for(data, "x.jpg")
    assert image.shape[:2] == (40, 30) and (original.width, original.height) == (30, 40)


def test_records_do_not_depend_on_annotated_copies(tmp_path: Path) -> None:
    """Annotated copies and crops need full-size pixels; the network still sees what it
    sees without them (a JPEG decoded at 1/4, a video frame shrunk from YUV)."""
    folder = tmp_path / "in"
    folder.mkdir()
    big = cv2.resize(cv2.imread(str(ROOT / "models" / "samples" / "coffee.jpg")), (2000, 1500))
    (folder / "big.jpg").write_bytes(jpeg(big))
    subprocess.run([sys.executable, str(ROOT / "models" / "make_pan_video.py"),
                    str(folder / "pan.mp4")], check=True, capture_output=True)
    runner = CliRunner()
    common = [str(folder), "-o", "-", "-q", "--vid-stride", "15"]
    plain = runner.invoke(app, ["detect", *common])
    saved = runner.invoke(app, ["detect", *common, "--save-dir", str(tmp_path / "out"),
                                "--save-crop", str(tmp_path / "crops")])
    assert plain.exit_code == saved.exit_code == 0, saved.output
    records = [json.loads(line) for line in plain.stdout.splitlines()]
    assert len(records) == 6 and all(r["detections"] for r in records)
    assert saved.stdout == plain.stdout
    copy = cv2.imread(str(tmp_path / "out" / "big.jpg"))
    assert copy.shape == (1500, 2000, 3)  # the copy is full size
