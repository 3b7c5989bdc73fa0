"""The bundled models as package data: found by name wherever a model is accepted, in
every kind of install (a wheel built here and installed elsewhere included), the
``AXRUN_MODELS`` folders first; ``axrun models`` lists them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

import axrun
from axrun.cli import app
from axrun.errors import EXIT_MODEL_OR_DEVICE, ModelError
from axrun.modelfolder import (
    available_models,
    bundled_model,
    find_model_json,
    is_model_name,
    load_model_folder,
    model_search_path,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_MODELS = ROOT / "axrun" / "models"
SAMPLES = ROOT / "models" / "samples"
NAMES = ("efficientnet-lite0-imagenet", "yolox-nano-coco")
runner = CliRunner()


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder outside the checkout: no relative path reaches a model."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_the_search_path_is_the_packages_own_folder_without_axrun_models() -> None:
    assert model_search_path() == [PACKAGE_MODELS]
    assert [(m.name, m.path, m.source) for m in available_models()] == \
        [(n, PACKAGE_MODELS / n, "bundled") for n in NAMES]
    assert bundled_model("classify") == PACKAGE_MODELS / NAMES[0]
    assert bundled_model("detect") == PACKAGE_MODELS / NAMES[1]


def test_what_counts_as_a_name() -> None:
    assert is_model_name("yolox-nano-coco") and is_model_name(Path("yolox-nano-coco"))
    for path in ("./yolox-nano-coco", "models/yolox-nano-coco", "yolox-nano-coco/model.json",
                 ".", "..", ""):
        assert not is_model_name(path), path


def test_library_resolves_names_from_any_folder(elsewhere: Path) -> None:
    assert find_model_json("yolox-nano-coco") == PACKAGE_MODELS / NAMES[1] / "model.json"
    assert load_model_folder(Path("efficientnet-lite0-imagenet")).root == \
        PACKAGE_MODELS / NAMES[0]
    assert axrun.Engine("yolox-nano-coco").folder.task == "detect"  # not opened
    with axrun.load("efficientnet-lite0-imagenet") as model:
        (result,) = model.predict([str(SAMPLES / "coffee.jpg")])
    assert result.classification is not None
    assert result.classification.label[0] == "espresso"
    # a path with a separator is a path only: no name lookup
    with pytest.raises(ModelError, match="model path not found: models/yolox-nano-coco"):
        load_model_folder("models/yolox-nano-coco")


def test_an_existing_path_wins_over_a_name(tiny, elsewhere: Path) -> None:
    shutil.copytree(tiny(kind="classifier", classes=10).path, elsewhere / "yolox-nano-coco")
    assert load_model_folder("yolox-nano-coco").root == Path("yolox-nano-coco")
    result = runner.invoke(app, ["info", "yolox-nano-coco", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "yolox-nano-coco"  # the local folder


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_path_that_hides_a_model_name_says_so(elsewhere: Path, kind: str) -> None:
    hiding = elsewhere / "yolox-nano-coco"
    hiding.mkdir() if kind == "folder" else hiding.write_text("notes")
    with pytest.raises(ModelError, match="hides the model named yolox-nano-coco, in "
                       + str(PACKAGE_MODELS / "yolox-nano-coco")):
        load_model_folder("yolox-nano-coco")


def test_cli_takes_names_for_model_and_info(elsewhere: Path) -> None:
    result = runner.invoke(app, ["info", "yolox-nano-coco", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == str(PACKAGE_MODELS / NAMES[1]) and data["task"] == "detect"
    result = runner.invoke(app, ["detect", "-m", "yolox-nano-coco", str(SAMPLES / "coffee.jpg"),
                                 "-q", "-o", "-"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert "cup" in {d["label"] for d in record["detections"]}
    result = runner.invoke(app, ["classify", "-m", "efficientnet-lite0-imagenet",
                                 str(SAMPLES / "coffee.jpg"), "-q", "-o", "-"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["top"][0]["label"] == "espresso"


@pytest.mark.parametrize(("args", "path"), [
    (["info", "no-such-model"], "no-such-model"),
    (["detect", "-m", "no-such-model", "x.jpg"], "no-such-model"),
    (["bench", "no-such-model"], "no-such-model"),
    (["info", "nowhere/no-such-model"], "nowhere/no-such-model"),
])
def test_an_unknown_name_is_a_model_error_listing_the_names(args, path, elsewhere) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_MODEL_OR_DEVICE == 3
    assert result.stderr.strip() == (
        f"error: model path not found: {path}; models by name: efficientnet-lite0-imagenet, "
        "yolox-nano-coco (axrun models lists them)")


def test_models_command_lists_the_bundled_models() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    row = next(line for line in lines if "yolox-nano-coco" in line)
    assert "detect" in row and "416x416" in row and "80" in row and "bundled" in row
    row = next(line for line in lines if "efficientnet-lite0-imagenet" in line)
    assert "classify" in row and "224x224" in row and "1000" in row
    assert lines[-1] == f"searched, in order: {PACKAGE_MODELS}"

    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["search_path"] == [str(PACKAGE_MODELS)]
    assert data["models"] == [
        {"name": NAMES[0], "task": "classify", "input_hw": [224, 224], "classes": 1000,
         "path": str(PACKAGE_MODELS / NAMES[0]), "source": "bundled", "error": None},
        {"name": NAMES[1], "task": "detect", "input_hw": [416, 416], "classes": 80,
         "path": str(PACKAGE_MODELS / NAMES[1]), "source": "bundled", "error": None},
    ]

    result = runner.invoke(app, ["models", "--path", "yolox-nano-coco"])
    assert result.exit_code == 0 and result.stdout == f"{PACKAGE_MODELS / NAMES[1]}\n"
    result = runner.invoke(app, ["models", "nope"])
    assert result.exit_code == 3
    assert "no model named 'nope'; models by name: efficientnet-lite0-imagenet, " \
        "yolox-nano-coco" in result.stderr


def test_axrun_models_folders_come_first_in_their_order(
        tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, elsewhere: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    classifier = tiny(kind="classifier", classes=10).path
    shutil.copytree(classifier, first / "yolox-nano-coco")  # shadows the bundled one
    shutil.copytree(classifier, second / "yolox-nano-coco")
    shutil.copytree(classifier, second / "my-net")
    (second / "broken").mkdir()
    (second / "broken" / "model.json").write_text("{}")  # no manifest.json
    (second / "notes").mkdir()  # no model.json: not a model
    search = os.pathsep.join([str(first), str(tmp_path / "missing"), str(second)])
    monkeypatch.setenv("AXRUN_MODELS", search)

    assert model_search_path()[:3] == [first, tmp_path / "missing", second]
    assert model_search_path()[3] == PACKAGE_MODELS
    assert find_model_json("yolox-nano-coco") == first / "yolox-nano-coco" / "model.json"
    assert bundled_model("detect") == first / "yolox-nano-coco"
    assert load_model_folder("my-net").root == second / "my-net"
    assert load_model_folder("efficientnet-lite0-imagenet").root == PACKAGE_MODELS / NAMES[0]

    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["search_path"] == [str(first), str(tmp_path / "missing"), str(second),
                                   str(PACKAGE_MODELS)]
    listed = {m["name"]: m for m in data["models"]}
    assert list(listed) == ["yolox-nano-coco", "broken", "my-net", NAMES[0]]
    assert listed["yolox-nano-coco"]["path"] == str(first / "yolox-nano-coco")
    assert listed["yolox-nano-coco"]["source"] == "AXRUN_MODELS"
    assert listed["yolox-nano-coco"]["task"] == "classify"  # the tiny classifier
    assert listed[NAMES[0]]["source"] == "bundled"
    assert listed["broken"]["task"] is None and "manifest.json" in listed["broken"]["error"]

    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.stderr
    assert "broken: " in result.stdout and "unreadable" in result.stdout
    result = runner.invoke(app, ["info", "yolox-nano-coco", "--json"])
    assert json.loads(result.stdout)["model"] == str(first / "yolox-nano-coco")


# A real install: the wheel built from this tree, installed into a folder of its own.

def _setuptools_version() -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return (0,)


@pytest.mark.timeout(120)
@pytest.mark.skipif(_setuptools_version() < (77,), reason="setuptools >= 77 (the build "
                    "backend pyproject.toml names, in the test extra) is not installed")
def test_wheel_carries_the_models_and_an_install_finds_them_by_name(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info beside it
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "axrun", src / "axrun",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, timeout=100)
    (wheel,) = (tmp_path / "dist").glob("axrun-*.whl")

    files = set(zipfile.ZipFile(wheel).namelist())
    for name in NAMES:
        for file in ("model.json", "manifest.json", "model.onnx", "axrun.json", "labels.txt"):
            assert f"axrun/models/{name}/{file}" in files
    assert "axrun/models/yolox-nano-coco/postprocess_graph.onnx" in files
    assert not [f for f in files if ".data/" in f]  # no data-files outside the package

    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, timeout=100)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("AXRUN_MODELS", None)
    code = ("import json, axrun, axrun.modelfolder as mf; print(json.dumps({"
            "'package': axrun.__file__, 'search': [str(p) for p in mf.model_search_path()], "
            "'by_name': [str(mf.load_model_folder(n).root) for n in "
            "('efficientnet-lite0-imagenet', 'yolox-nano-coco')], "
            "'default': [str(mf.bundled_model(t)) for t in ('classify', 'detect')]}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    installed = target / "axrun" / "models"
    assert got["package"] == str(target / "axrun" / "__init__.py")  # not the checkout's
    assert got["search"] == [str(installed)]
    assert got["by_name"] == got["default"] == [str(installed / n) for n in NAMES]

    # the installed command line: one real classification by name
    proc = subprocess.run([sys.executable, "-m", "axrun", "classify", "-m",
                           "efficientnet-lite0-imagenet", str(SAMPLES / "coffee.jpg"), "-q",
                           "-o", "-"], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["top"][0]["label"] == "espresso"
