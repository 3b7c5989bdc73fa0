"""``axrun check``, the compile-time fidelity report and the per-layer ranking, on the
bundled models against the float models they were compiled from (built as ``make
models`` builds them: ``models/build.py --float-only``, cached in build/models-cache)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from axrun.cli.commands import app
from axrun.compiler import CompileOptions, compile_model
from axrun.compiler.sensitivity import gated_graph
from axrun.errors import ModelError
from axrun.fidelity import Tally, compare_detections, disagreement_text, match_boxes
from axrun.preprocess import PreprocessRecipe
from axrun.results import Detections

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "models" / "samples"
runner = CliRunner()
# YOLOX-Nano's head convolutions (reg, obj, cls at strides 8, 16, 32), as models/build.py cuts
YOLOX_CUT = ("1062", "1063", "1045", "1104", "1105", "1087", "1146", "1147", "1129")


@pytest.fixture(scope="module")
def float_models() -> dict[str, Path]:
    """The float EfficientNet-Lite0 and YOLOX-Nano, from the cache or built (pinned,
    hashes checked; the first build exports EfficientNet with torch, about a minute)."""
    done = subprocess.run([sys.executable, str(ROOT / "models" / "build.py"), "--float-only"],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        pytest.fail(f"models/build.py --float-only failed:\n{done.stdout}\n{done.stderr}")
    effnet, yolox = (Path(line) for line in done.stdout.splitlines()[-2:])  # the paths
    return {"efficientnet-lite0-imagenet": effnet, "yolox-nano-coco": yolox}


def readme_summary(which: int) -> str:
    """The summary line models/README.md records (0: classify, 1: detect)."""
    found = re.findall(r"^Summary: (.*)\.$", (ROOT / "models" / "README.md").read_text(), re.M)
    return found[which]


def same_figures(got: str, recorded: str) -> bool:
    """The same counts, and the same decimals within 0.002 (another CPU may round an
    int8 product differently)."""
    numbers = re.compile(r"\d+\.\d+|\d+")
    a, b = numbers.findall(got), numbers.findall(recorded)
    return numbers.sub("#", got) == numbers.sub("#", recorded) and all(
        x == y if "." not in x else abs(float(x) - float(y)) <= 0.002
        for x, y in zip(a, b, strict=True))


def check(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--backend", "emulator", "check", *args])
    return result.exit_code, result.stdout, result.stderr


def test_check_classifier_gives_the_figures_models_readme_records(float_models) -> None:
    model = "efficientnet-lite0-imagenet"
    code, out, err = check(model, str(SAMPLES), "--float", str(float_models[model]))
    assert code == 1  # 5 of 6 is below the default --min-agreement 0.9
    assert "agreement 0.8333 is below --min-agreement 0.9" in err
    assert out.splitlines()[0] == ("differs: " + str(SAMPLES / "chelsea.jpg")
                                   + ": float Egyptian cat 0.38, INT8 tiger cat 0.40")
    assert same_figures(out.splitlines()[-1], readme_summary(0))
    code, out, _ = check(model, str(SAMPLES), "--float", str(float_models[model]), "--json",
                         "--min-agreement", "0.8")
    assert code == 0
    fidelity = json.loads(out)["fidelity"]
    assert fidelity["images"] == 6 and fidelity["metrics"]["top1_agreement"] == 0.8333
    assert fidelity["metrics"]["top5_agreement"] == 1.0
    (differs,) = fidelity["disagreements"]
    assert (differs["float"]["label"], differs["int8"]["label"]) == ("Egyptian cat", "tiger cat")


def test_check_detector_gives_the_figures_models_readme_records(float_models) -> None:
    model = "yolox-nano-coco"
    code, out, _ = check(model, str(SAMPLES), "--float", str(float_models[model]), "--json")
    assert code == 0  # box F1 0.941
    fidelity = json.loads(out)["fidelity"]
    assert same_figures(fidelity["summary"], readme_summary(1))
    m = fidelity["metrics"]
    assert (m["float_boxes"], m["int8_boxes"], m["matched_boxes"]) == (8, 9, 8)
    assert m["recall"] == 1.0 and m["precision"] == 0.8889
    (differs,) = fidelity["disagreements"]
    assert Path(differs["source"]).name == "chelsea.jpg"
    assert [b["label"] for b in differs["extra"]] == ["dog"] and differs["missed"] == []


def test_a_model_compiled_with_the_wrong_recipe_fails_check(float_models, tmp_path) -> None:
    """The reported failure: raw 0-255 pixels where the network wants (x - 127) / 128.
    Compared under the float model's own recipe, it disagrees; exit 1."""
    effnet = float_models["efficientnet-lite0-imagenet"]
    broken = compile_model(CompileOptions(
        model=effnet, output=tmp_path / "broken", calibration=ROOT / "models" / "calibration",
        recipe=PreprocessRecipe(mode="crop", resize=256, color="rgb"), task="classify",
        labels=ROOT / "models" / "labels" / "imagenet-1k.txt", holdout=0))
    code, out, err = check(str(broken), str(SAMPLES), "--float", str(effnet), "--preprocess",
                           "mode=crop,resize=256,color=rgb,mean=127,std=128", "--json")
    assert code == 1
    assert json.loads(out)["fidelity"]["agreement"] <= 0.5
    assert "float model preprocessing: --preprocess" in err


def test_compile_auto_int16_finds_the_yolox_stem_and_reports_fidelity(float_models,
                                                                        tmp_path) -> None:
    """The hand study kept 1177 687 1180 691 (stem conv, its SiLU, first depthwise conv,
    its SiLU) at 16 bits; the ranking names the first three as the costliest (then 1183,
    the pointwise conv after them, before 691). Held-out images give fidelity.json,
    which info shows."""
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for photo in [*sorted(SAMPLES.glob("*.jpg")),
                  *sorted((ROOT / "models" / "calibration").glob("*.jpg"))]:
        (calibration / f"{photo.parent.name}-{photo.name}").symlink_to(photo)
    out = tmp_path / "yolox"
    result = runner.invoke(app, [
        "compile", str(float_models["yolox-nano-coco"]), "-o", str(out), "--calibration",
        str(calibration), "--task", "detect", "--labels",
        str(ROOT / "models" / "labels" / "coco-80.txt"), "--decoder", "format=yolox",
        "--preset", "yolox", "--auto-int16", "4",
        *[arg for name in YOLOX_CUT for arg in ("--postamble-from", name)]])
    assert result.exit_code == 0, result.output
    side = json.loads((out / "axrun.json").read_text())
    assert side["int16_tensors"][:3] == ["1177", "687", "1180"]
    assert "--auto-int16: keeping 1177 687 1180" in result.stderr
    assert "3 others held out" in result.stderr
    fidelity = json.loads((out / "fidelity.json").read_text())
    assert fidelity["images"] == 3 and fidelity["images_from"].startswith("3 held-out")
    assert fidelity["metrics"]["recall"] > 0.7  # all 8-bit, it is 0.41 on these photos
    info = runner.invoke(app, ["info", str(out)])
    assert "fidelity against yolox-nano.onnx on 3 held-out images" in info.stdout


@pytest.mark.parametrize("model", ["efficientnet-lite0-imagenet", "yolox-nano-coco"])
def test_per_layer_ranks_the_bundled_models_activations(model) -> None:
    code, out, _ = check(model, str(SAMPLES / "chelsea.jpg"), "--per-layer",
                         "--layer-images", "1", "--top", "5")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("per layer, on 1 image(s): the device outputs' SQNR is")
    ranked = [float(line.split()[0]) for line in lines[1:6]]
    assert ranked == sorted(ranked)  # the costliest first
    if model == "yolox-nano-coco":  # its 16-bit stem is not ranked again, and is kept
        assert not {"1177", "687", "1180", "691"} & {line.split()[2] for line in lines[1:6]}
        assert lines[6] == "already 16-bit (not ranked): 1177 687 1180 691"
    assert lines[-1].startswith("candidates for 16 bits: axrun compile ... --int16 ")


def test_check_needs_a_float_model_or_per_layer() -> None:
    code, _, err = check("yolox-nano-coco", str(SAMPLES))
    assert code == 2 and "give --float FLOAT.onnx" in err


def test_a_graph_without_qdq_activations_has_no_per_layer_report() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])],
                                                "g", [x], [y]))
    with pytest.raises(ModelError, match="a model folder axrun compile wrote"):
        gated_graph(onnx.shape_inference.infer_shapes(model))


def boxes(*rows: tuple[float, float, float, float, int, float]) -> Detections:
    a = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(a[:, :4], a[:, 5], a[:, 4].astype(np.int64),
                      tuple(f"c{int(c)}" for c in a[:, 4]))


def test_boxes_match_by_class_at_iou_one_half_best_first() -> None:
    ref = boxes((0, 0, 10, 10, 1, 0.9), (20, 20, 30, 30, 2, 0.8), (0, 0, 10, 10, 3, 0.5))
    got = boxes((1, 0, 11, 10, 1, 0.7),   # c1, IoU 0.82
                (20, 20, 30, 30, 5, 0.9),  # right place, wrong class
                (0, 0, 10, 4, 3, 0.6))     # c3, IoU 0.4: too little
    assert [(i, j) for i, j, _ in match_boxes(ref, got)] == [(0, 0)]
    detail = compare_detections(ref, got)
    assert (detail["matched"], len(detail["missed"]), len(detail["extra"])) == (1, 2, 2)
    text = disagreement_text({"source": "a.jpg", "frame": 3, **detail})
    assert text == "a.jpg frame 3: INT8 missed c2 0.80, c3 0.50; INT8 added c5 0.90, c3 0.60"


def test_no_boxes_on_either_side_is_nothing_compared(float_models) -> None:
    """Not a perfect score: exit 1, and the JSON document still printed."""
    tally = Tally("detect")
    tally.images = 2
    assert tally.agreement is None and tally.metrics()["recall"] is None
    model = "yolox-nano-coco"
    code, out, err = check(model, str(SAMPLES / "rocket.jpg"), "--float",
                           str(float_models[model]), "--json", "--min-agreement", "0")
    assert code == 1 and "nothing was compared: no boxes on either side" in err
    assert json.loads(out)["fidelity"]["agreement"] is None


def test_check_refusals(float_models, tmp_path) -> None:
    effnet = float_models["efficientnet-lite0-imagenet"]
    code, _, err = check("efficientnet-lite0-imagenet", str(SAMPLES), "--float", str(effnet),
                         "--save")
    assert code == 2 and "is a bundled model" in err
    model = onnx.load(str(effnet))  # the same network taking uint8 pixels
    name = model.graph.input[0].name
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    model.graph.node.insert(0, helper.make_node("Cast", [name], ["as_float"],
                                                to=TensorProto.FLOAT))
    for node in model.graph.node[1:]:
        node.input[:] = ["as_float" if n == name else n for n in node.input]
    onnx.save(model, str(tmp_path / "u8.onnx"))
    code, _, err = check("efficientnet-lite0-imagenet", str(SAMPLES), "--float",
                         str(tmp_path / "u8.onnx"))
    assert code == 3 and "takes tensor(uint8) input" in err
    meta = onnx.load(str(effnet))  # a recipe in its metadata that cannot be read
    meta.metadata_props.add(key="axrun.preprocess", value="mode=crop,mean=127,sdt=128")
    onnx.save(meta, str(tmp_path / "meta.onnx"))
    code, _, err = check("efficientnet-lite0-imagenet", str(SAMPLES), "--float",
                         str(tmp_path / "meta.onnx"))
    assert code == 2 and "axrun.preprocess metadata" in err and "sdt" in err
    code, _, err = check("efficientnet-lite0-imagenet", str(SAMPLES), "--per-layer", "--conf",
                         "0.5")
    assert code == 2 and "--conf: for the comparison with --float" in err
    (tmp_path / "bad.jpg").write_text("not a picture")
    code, out, err = check("efficientnet-lite0-imagenet", str(tmp_path / "bad.jpg"),
                           str(SAMPLES / "coffee.jpg"), "--per-layer", "--layer-images", "1",
                           "--top", "1")
    assert code == 1 and err.count("error: ") == 1 and "bad.jpg" in err
    assert out.startswith("per layer, on 1 image(s)")
    code, out, err = check("efficientnet-lite0-imagenet", str(tmp_path / "bad.jpg"), "--float",
                           str(effnet), "--json")
    assert code == 1 and "nothing was compared: no image could be read" in err
    assert json.loads(out)["fidelity"]["failures"][0]["source"].endswith("bad.jpg")


def test_check_runs_the_device_path_of_a_card(float_models, monkeypatch) -> None:
    """With axrun.runtime present (here the strict stand-in for it), check runs the INT8
    side through the real backend's path: the same figures."""
    import metis_standin

    metis_standin.install(monkeypatch)
    model = "yolox-nano-coco"
    result = runner.invoke(app, ["--backend", "metis", "check", model, str(SAMPLES),
                                 "--float", str(float_models[model]), "-q"])
    assert result.exit_code == 0, result.output
    assert same_figures(result.stdout.strip(), readme_summary(1))


def test_an_sdk_folder_without_postamble_is_checked_against_an_ultralytics_export(
        tmp_path, monkeypatch) -> None:
    """The SDK cuts YOLOv8 at its DFL heads (no postamble); its float export decodes
    to ``[1, 4 + classes, anchors]``. check reads each side by its own layout: the
    same bird in the same place agrees, through the card's path."""
    import metis_standin
    from sdkfolder import Planted, fixed_graph, sdk_folder

    from axrun.fidelity import check_model
    from axrun.sources import items_from

    metis_standin.install(monkeypatch)
    size, scale = 32, 0.25

    def heads(channels: int, fill: float) -> list[Planted]:
        return [Planted(np.full((size // s, size // s, channels), fill, np.float32), scale)
                for s in (8, 16, 32)]

    boxes, classes = heads(64, 0.0), heads(3, -32.0)
    cell = np.full(64, -32.0, np.float32)  # every side one stride (8 px) from the centre
    cell[[1, 17, 33, 49]] = 31.75
    boxes[0].values[2, 1] = cell  # stride 8, row 2, column 1: centre (12, 20)
    classes[0].values[2, 1, 2] = 2.0  # bird, logit 2
    folder = sdk_folder(tmp_path, boxes + classes, model_info={
        "task_category": "ObjectDetection", "labels": ["cat", "dog", "bird"],
        "num_classes": 3})
    pred = np.zeros((1, 7, 21), np.float32)  # 16 + 4 + 1 anchors
    pred[0, :, 2 * 4 + 1] = [12, 20, 16, 16, 0, 0, 1 / (1 + np.exp(-2.0))]
    float_model = tmp_path / "yolov8.onnx"
    onnx.save(fixed_graph({"images": [1, 3, size, size]}, output0=pred), str(float_model))
    photo = np.full((56, 64, 3), 90, np.uint8)
    fidelity = check_model(folder, float_model, items_from([photo, photo]), backend="metis")
    assert fidelity.tally.float_boxes == fidelity.tally.int8_boxes == 2
    assert fidelity.tally.agreement == 1.0 and fidelity.tally.metrics()["mean_iou"] > 0.99
    pred[0, 6, 2 * 4 + 1], pred[0, 5, 2 * 4 + 1] = 0.0, 0.9  # float says dog
    onnx.save(fixed_graph({"images": [1, 3, size, size]}, output0=pred), str(float_model))
    fidelity = check_model(folder, float_model, items_from([photo]), backend="metis")
    assert fidelity.tally.agreement == 0.0
    (differs,) = fidelity.disagreements
    assert [b["label"] for b in differs["missed"]] == ["dog"]
    assert [b["label"] for b in differs["extra"]] == ["bird"]
