"""YOLOX folders as the Voyager SDK compiles them: the postamble gives boxes already
decoded (cx, cy, w, h in model-input pixels), which axrun decoded a second time (every
box the whole image). A planted box must come out at its exact original pixels; a
format that does not fit the values is an error, never boxes in the wrong place."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import axrun
from axrun.errors import ModelError
from axrun.tasks.base import DEFAULT_RECIPES

RECIPE = DEFAULT_RECIPES["detect"]  # an SDK YOLOX folder does not say its preprocessing

ANCHORS, CLASSES, SIZE = 20, 3, 16
LABELS = ("cat", "dog", "bird")  # as model_info.json would give them


def fixed_postamble(**outputs: np.ndarray) -> onnx.ModelProto:
    """A postamble that reads the device's ``head_a`` and gives these fixed tensors."""
    nodes = [helper.make_node("ReduceMean", ["head_a"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    for name, value in outputs.items():
        nodes.append(helper.make_node("Add", [f"planted_{name}", "z"], [name]))
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"planted_{name}"))
    graph = helper.make_graph(
        nodes, "fixed_postamble",
        [helper.make_tensor_value_info("head_a", TensorProto.FLOAT, [1, 5, SIZE, SIZE])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape))
         for name, value in outputs.items()], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def planted_postamble(rows: dict[int, list[float]]) -> onnx.ModelProto:
    """The SDK's YOLOX postamble, giving a fixed ``[1, A, 5 + C]``."""
    pred = np.zeros((1, ANCHORS, 5 + CLASSES), np.float32)
    for anchor, row in rows.items():
        pred[0, anchor] = row
    return fixed_postamble(pred=pred)


@pytest.fixture
def sdk_yolox(tiny, tmp_path: Path):
    def build(rows: dict[int, list[float]]) -> Path:
        folder = tmp_path / "yolox" / "1"
        shutil.copytree(tiny(kind="detector", size=SIZE, with_postamble=True).path, folder)
        assert not (folder / "axrun.json").exists()  # as the SDK writes it: no sidecar
        onnx.save(planted_postamble(rows), folder / "postprocess_graph.onnx")
        return folder
    return build


def test_an_sdk_yolox_box_lands_at_its_exact_original_pixels(sdk_yolox) -> None:
    # cx 12, cy 10, w 8, h 4 in the 16x16 network input; a 32x32 photo is scaled by 0.5
    folder = sdk_yolox({7: [12, 10, 8, 4, 0.9, 0, 0, 0.8]})
    photo = np.full((32, 32, 3), 90, np.uint8)
    with axrun.load(folder, task="detect", recipe=RECIPE, labels=LABELS) as model:
        assert model.task.format == "yolox-decoded"
        d = model.predict([photo])[0].detections
    assert d is not None and len(d) == 1
    np.testing.assert_allclose(d.xyxy[0], [16, 16, 32, 24])
    assert d.class_id[0] == 2 and d.confidence[0] == pytest.approx(0.72)


def test_raw_format_on_decoded_values_is_an_error(sdk_yolox) -> None:
    folder = sdk_yolox({7: [12, 10, 8, 4, 0.9, 0, 0, 0.8]})
    with axrun.load(folder, task="detect", recipe=RECIPE, labels=LABELS,
                    decoder={"format": "yolox"}) as model, \
            pytest.raises(ModelError, match="look already decoded.*format=yolox-decoded"):
        model.predict([np.zeros((32, 32, 3), np.uint8)])


def test_decoded_format_on_raw_values_is_an_error(sdk_yolox) -> None:
    folder = sdk_yolox({7: [0.4, 0.7, 0.5, 0.3, 0.9, 0, 0, 0.8]})  # offsets, log sizes
    with axrun.load(folder, task="detect", recipe=RECIPE, labels=LABELS) as model, \
            pytest.raises(ModelError, match="look raw.*format=yolox"):
        model.predict([np.zeros((32, 32, 3), np.uint8)])


def test_the_cli_takes_a_decoder_and_says_which_format_is_wrong(sdk_yolox, tmp_path) -> None:
    from typer.testing import CliRunner

    from axrun.cli import app

    folder = sdk_yolox({7: [12, 10, 8, 4, 0.9, 0, 0, 0.8]})
    photo = tmp_path / "p.png"
    import cv2

    cv2.imwrite(str(photo), np.full((32, 32, 3), 90, np.uint8))
    unsure = CliRunner().invoke(app, ["detect", "-m", str(folder), str(photo), "-q"])
    assert unsure.exit_code == 3 and "give --decoder format=yolox-decoded" in unsure.stderr
    (folder.parent / "model_info.json").write_text(
        '{"task_category": "ObjectDetection", "labels": ["cat", "dog", "bird"]}')
    ok = CliRunner().invoke(app, ["detect", "-m", str(folder), str(photo), "-o", "-", "-q",
                                  "--std", "255"])
    assert ok.exit_code == 0 and '"label": "bird"' in ok.stdout
    assert '"box": [16.0, 16.0, 32.0, 24.0]' in ok.stdout
    wrong = CliRunner().invoke(app, ["detect", "-m", str(folder), str(photo), "-q",
                                     "--std", "255", "--decoder", "format=yolox"])
    assert wrong.exit_code == 3 and "look already decoded" in wrong.stderr


def two_output_postamble(box: list[float], score: float) -> onnx.ModelProto:
    """YOLO-NAS style: scores [1, A, C] first, then boxes [1, A, 4] (x1, y1, x2, y2)."""
    boxes = np.zeros((1, ANCHORS, 4), np.float32)
    scores = np.zeros((1, ANCHORS, CLASSES), np.float32)
    boxes[0, 3], scores[0, 3, 1] = box, score
    return fixed_postamble(scores=scores, boxes=boxes)


def test_two_output_postambles_give_their_boxes(sdk_yolox) -> None:
    folder = sdk_yolox({})
    onnx.save(two_output_postamble([8, 8, 16, 12], 0.6), folder / "postprocess_graph.onnx")
    with axrun.load(folder, task="detect") as model:
        assert model.task.format == "boxes-scores"
        d = model.predict([np.full((32, 32, 3), 90, np.uint8)])[0].detections
    assert d is not None and len(d) == 1 and d.class_id[0] == 1
    np.testing.assert_allclose(d.xyxy[0], [16, 16, 32, 24])
    assert d.confidence[0] == pytest.approx(0.6)
    with pytest.raises(ModelError, match="gives 2 outputs; format yolox reads one"):
        axrun.load(folder, task="detect", decoder={"format": "yolox"})
    onnx.save(two_output_postamble([16, 12, 8, 8], 0.6), folder / "postprocess_graph.onnx")
    with axrun.load(folder, task="detect") as model, \
            pytest.raises(ModelError, match="not x1, y1, x2, y2"):
        model.predict([np.zeros((32, 32, 3), np.uint8)])


def test_the_transposed_ultralytics_layout_is_told_from_yolox_by_the_classes(
        sdk_yolox) -> None:
    # [1, A, 4 + C]: cx, cy, w, h, then class scores, anchor by anchor
    folder = sdk_yolox({})
    pred = np.zeros((1, ANCHORS, 4 + CLASSES), np.float32)
    pred[0, 5] = [12, 10, 8, 4, 0, 0.7, 0]
    onnx.save(fixed_postamble(pred=pred), folder / "postprocess_graph.onnx")
    with axrun.load(folder, task="detect", recipe=RECIPE, labels=LABELS) as model:
        assert model.task.format == "ultralytics-transposed"
        d = model.predict([np.full((32, 32, 3), 90, np.uint8)])[0].detections
    assert d is not None and list(d.label) == ["dog"]
    np.testing.assert_allclose(d.xyxy[0], [16, 16, 32, 24])
    with pytest.raises(ModelError, match="classes are unknown.*ultralytics-transposed"):
        axrun.load(folder, task="detect")  # 7 columns: YOLOX of 2 classes, or this of 3


def test_info_says_which_decoder_detect_will_use_and_why(sdk_yolox) -> None:
    import json

    from typer.testing import CliRunner

    from axrun.cli import app

    folder = sdk_yolox({7: [12, 10, 8, 4, 0.9, 0, 0, 0.8]})
    (folder.parent / "model_info.json").write_text(
        '{"task_category": "ObjectDetection", "labels": ["cat", "dog", "bird"]}')
    text = CliRunner().invoke(app, ["info", str(folder)], terminal_width=250).stdout
    assert ("decoder: yolox-decoded — the postamble's output [1, 20, 8] with 3 classes, in a "
            "folder without axrun.json") in text
    data = json.loads(CliRunner().invoke(app, ["info", str(folder), "--json"]).stdout)
    assert data["decoder_used"]["format"] == "yolox-decoded" and data["preamble"] is None
    assert data["labels"]["count"] == 3 and data["task"] == "detect"


def test_raw_values_with_large_boxes_read_as_decoded_are_an_error(sdk_yolox) -> None:
    # log sizes above 1.5 (objects wider than ~4.5 strides) once slipped through
    folder = sdk_yolox({7: [0.4, 0.7, 1.6, 1.2, 0.9, 0, 0, 0.8]})
    with axrun.load(folder, task="detect", recipe=RECIPE, labels=LABELS) as model, \
            pytest.raises(ModelError, match="look raw"):
        model.predict([np.zeros((32, 32, 3), np.uint8)])
    with axrun.load(folder, task="detect", recipe=RECIPE, labels=LABELS,
                    decoder={"check": False}) as model:
        assert len(model.predict([np.zeros((32, 32, 3), np.uint8)])[0].detections) == 1


def test_a_raw_yolox_folder_that_lost_its_axrun_json_stops_with_an_error(tmp_path) -> None:
    from typer.testing import CliRunner

    from axrun.cli import app

    root = Path(__file__).parents[2]
    folder = tmp_path / "yolox"
    shutil.copytree(root / "axrun" / "models" / "yolox-nano-coco", folder)
    (folder / "axrun.json").unlink()  # now it looks like an SDK folder: read decoded
    result = CliRunner().invoke(app, ["detect", "-m", str(folder), "--labels",
                                      str(folder / "labels.txt"), "--color", "bgr", "--std",
                                      "1", str(root / "models" / "example-detect.jpg"), "-q",
                                      "-o", "-"])
    assert result.exit_code == 3 and "look raw" in result.stderr, result.stderr


def test_boxes_scores_labels_must_cover_the_scores_columns(sdk_yolox) -> None:
    folder = sdk_yolox({})
    onnx.save(two_output_postamble([8, 8, 16, 12], 0.6), folder / "postprocess_graph.onnx")
    with pytest.raises(ModelError, match="labels list has 1 names; the model has 3 classes"):
        axrun.load(folder, task="detect", labels=("only",))
