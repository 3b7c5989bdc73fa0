"""Images as phones, browsers and scanners write them, decoded as a viewer shows them:
HEIC/AVIF, every page of a multi-page file, transparency composited, the pixel cap
explained, EXIF orientation; every file a folder scan recognises gets a record."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from axrun.cli import app
from axrun.images import decode_bytes
from axrun.sources import SourceOptions, expand

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "models" / "samples"
RED, BLUE = (200, 20, 20), (20, 20, 200)  # RGB


def flat(rgb: tuple[int, int, int], size: tuple[int, int] = (60, 40)) -> Image.Image:
    return Image.new("RGB", size, rgb)


def bgr_at(image: np.ndarray, y: int, x: int) -> list[int]:
    return [int(v) for v in image[y, x]]


def test_heic_and_avif_are_images_by_name_and_by_content(tmp_path) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    flat(RED).save(tmp_path / "iphone.HEIC", format="HEIF", quality=95)
    flat(BLUE).save(tmp_path / "web.avif", format="AVIF", quality=95)
    (tmp_path / "no_suffix").write_bytes((tmp_path / "iphone.HEIC").read_bytes())
    Image.fromarray(cv2.imread(str(SAMPLES / "coffee.jpg"))[..., ::-1]).save(
        tmp_path / "photo.jpg")
    got = {Path(i.source).name: i for i in expand([str(tmp_path)])}
    assert set(got) == {"iphone.HEIC", "web.avif", "no_suffix", "photo.jpg"}
    for name, rgb in (("iphone.HEIC", RED), ("web.avif", BLUE), ("no_suffix", RED)):
        image = got[name].load()
        assert image.shape == (40, 60, 3)
        assert np.abs(np.array(bgr_at(image, 20, 30)) - rgb[::-1]).max() <= 6, name
    only = tmp_path / "only"
    only.mkdir()
    (only / "a.heic").write_bytes((tmp_path / "iphone.HEIC").read_bytes())
    assert [i.load().shape for i in expand([str(only)])] == [(40, 60, 3)]


def test_an_image_that_cannot_be_decoded_names_its_format(tmp_path) -> None:
    jxl = b"\xff\x0a" + bytes(100)  # a JPEG XL codestream: no decoder installed here
    with pytest.raises(Exception, match="a JPEG XL image that cannot be decoded here "
                                        r"\(install pillow-jxl-plugin\)"):
        decode_bytes(jxl, "x.jxl")
    (tmp_path / "x.jxl").write_bytes(jxl)
    assert [Path(i.source).name for i in expand([str(tmp_path)])] == ["x.jxl"]  # a record
    broken = io.BytesIO()
    flat(RED).save(broken, format="PNG")
    with pytest.raises(Exception, match="cannot decode image"):
        decode_bytes(broken.getvalue()[:60], "cut.png")


def test_every_page_of_a_tiff_and_every_frame_of_an_animation_is_an_input(tmp_path) -> None:
    pages = [flat(c) for c in (RED, BLUE, (20, 200, 20))]
    pages[0].save(tmp_path / "scan.tiff", save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "anim.gif", save_all=True, append_images=pages[1:], duration=100)
    pages[0].save(tmp_path / "anim.webp", save_all=True, append_images=pages[1:],
                  duration=100, lossless=True)
    flat(RED).save(tmp_path / "still.gif")
    got = list(expand([str(tmp_path)]))
    by_name: dict[str, list] = {}
    for item in got:
        by_name.setdefault(Path(item.source).name, []).append(item)
    assert [i.frame for i in by_name["still.gif"]] == [None]  # one frame: an image
    for name in ("scan.tiff", "anim.gif", "anim.webp"):
        items = by_name[name]
        assert [i.frame for i in items] == [0, 1, 2], name
        for item, rgb in zip(items, (RED, BLUE, (20, 200, 20)), strict=True):
            assert np.abs(np.array(bgr_at(item.load(), 20, 30)) - rgb[::-1]).max() <= 4


def transparent_photo(path: Path) -> np.ndarray:
    """The detect example with its right half erased (alpha 0) but its colours kept,
    as background removers export; returns what a viewer shows (over white)."""
    bgr = cv2.imread(str(ROOT / "models" / "example-detect.jpg"))
    alpha = np.full(bgr.shape[:2], 255, np.uint8)
    alpha[:, bgr.shape[1] // 2:] = 0
    cv2.imwrite(str(path), np.dstack([bgr, alpha]))
    shown = bgr.copy()
    shown[:, bgr.shape[1] // 2:] = 255
    return shown


def test_transparent_pixels_are_composited_as_a_viewer_shows_them(tmp_path) -> None:
    shown = transparent_photo(tmp_path / "cutout.png")
    np.testing.assert_array_equal(next(expand([str(tmp_path / "cutout.png")])).load(), shown)
    black = SourceOptions(background=(0, 0, 0))
    assert next(expand([str(tmp_path / "cutout.png")], black)).load()[:, -1].max() == 0
    cv2.imwrite(str(tmp_path / "shown.png"), shown)
    runs = {}
    for name in ("cutout.png", "shown.png"):
        result = CliRunner().invoke(app, ["detect", str(tmp_path / name), "-o", "-", "-q"])
        assert result.exit_code == 0, result.stderr
        runs[name] = json.loads(result.stdout)["detections"]
    assert runs["cutout.png"] == runs["shown.png"]  # nothing detected where nothing shows
    assert all(d["box"][0] < shown.shape[1] / 2 for d in runs["cutout.png"])


def test_over_the_pixel_cap_says_the_size_the_cap_and_how_to_raise_it(tmp_path,
                                                                     monkeypatch) -> None:
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "1000")
    flat(RED).save(tmp_path / "a.png")
    with pytest.raises(Exception, match=r"60x40 = 2,400 pixels is over the cap of 1,000; "
                                        "OPENCV_IO_MAX_IMAGE_PIXELS=N raises it"):
        next(expand([str(tmp_path / "a.png")])).load()
    # a later page of a TIFF over the cap (the cap was checked on page 0 only)
    small, large = flat(RED, (10, 10)), flat(BLUE, (100, 100))
    small.save(tmp_path / "p.tiff", save_all=True, append_images=[large])
    pages = list(expand([str(tmp_path / "p.tiff")]))
    assert pages[0].load().shape == (10, 10, 3)
    with pytest.raises(Exception, match="100x100 = 10,000 pixels"):
        pages[1].load()


def test_a_jpeg_cut_short_is_an_error_not_grey(tmp_path) -> None:
    data = (SAMPLES / "coffee.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match="a JPEG cut short"):
        next(expand([str(tmp_path / "cut.jpg")])).load()


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_exif_orientation_is_applied(tmp_path, fmt) -> None:
    image = flat(RED, (60, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / f"r.{fmt.lower()}"
    image.save(path, format=fmt, exif=exif.tobytes())
    assert next(expand([str(path)])).load().shape == (60, 40, 3)


def test_background_option(tmp_path) -> None:
    transparent_photo(tmp_path / "cutout.png")
    result = CliRunner().invoke(app, ["classify", str(tmp_path / "cutout.png"), "-q",
                                      "--background", "nope"])
    assert result.exit_code == 2 and "--background must be" in result.stderr
    for value in ("black", "0,0,0", "#000000"):
        ok = CliRunner().invoke(app, ["classify", str(tmp_path / "cutout.png"), "-q",
                                      "-o", "-", "--background", value])
        assert ok.exit_code == 0, ok.stderr


def test_pages_are_annotated_as_images_not_videos(tmp_path) -> None:
    pages = [flat(c) for c in (RED, BLUE)]
    pages[0].save(tmp_path / "scan.tiff", save_all=True, append_images=pages[1:])
    flat(RED).save(tmp_path / "still.gif")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["detect", str(tmp_path / "scan.tiff"),
                                      str(tmp_path / "still.gif"), "--save-dir", str(out),
                                      "-q", "-o", "-"])
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["frame"] for line in result.stdout.splitlines()] == [0, 1, None]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "scan.page0.tiff", "scan.page1.tiff", "still.gif.jpg"]
