"""Every detector family as the Voyager SDK compiles it, on the emulator and on the
metis backend's path (a strict stand-in of the documented ``axelera.runtime``): one
object planted in the device's (or the postamble's) outputs must come out at its exact
original-image pixels, with its class and confidence.

The network input is 32x32 (strides 8, 16, 32: 16 + 4 + 1 = 21 anchors); the object is
centred on cell (x 1, y 2) of stride 8, box [4, 12, 20, 28] in input pixels. The photo
is 64 wide, 56 high: letterboxed at scale 0.5 with 2 rows of padding above, so the box
is [8, 20, 40, 52] in its pixels.
"""

from __future__ import annotations

from pathlib import Path

import metis_standin
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from sdkfolder import Planted, fixed_graph, sdk_folder

import axrun
from axrun.errors import ModelError

SIZE, CLASSES, ANCHORS = 32, 3, 21
LABELS = ["cat", "dog", "bird"]


def info(labels: list[str]) -> dict:
    """model_info.json's fields axrun reads, for a detector of these classes."""
    return {"task_category": "ObjectDetection", "labels": labels, "num_classes": len(labels)}


INFO = info(LABELS)
PHOTO = np.full((56, 64, 3), 90, np.uint8)
EXPECTED = [8, 20, 40, 52]
ANCHOR = 2 * 4 + 1  # stride 8 comes first; row 2, column 1 of its 4x4 grid
# A device output the postamble families read (the postamble ignores its values).
HEAD = Planted(np.zeros((SIZE // 8, SIZE // 8, 6), np.float32), 0.1, channels=64)


@pytest.fixture(params=["emulator", "metis"])
def backend(request, monkeypatch) -> str:
    if request.param == "metis":
        metis_standin.install(monkeypatch)
    return request.param


def postamble(**outputs: np.ndarray) -> onnx.ModelProto:
    return fixed_graph({"output0": [1, 6, SIZE // 8, SIZE // 8]}, **outputs)


def rows(width: int, row: list[float]) -> np.ndarray:
    pred = np.zeros((1, ANCHORS, width), np.float32)
    pred[0, ANCHOR] = row
    return pred


def detect(folder: Path, backend: str, **kw) -> axrun.Detections:
    recipe = axrun.preprocess_recipe(axrun.load_model_folder(folder), "detect")
    with axrun.load(folder, backend=backend, recipe=recipe, **kw) as model:
        assert model.engine.backend.name == backend
        d = model.predict([PHOTO])[0].detections
    assert d is not None
    return d


def assert_one(d: axrun.Detections, confidence: float) -> None:
    assert len(d) == 1 and list(d.label) == ["bird"]
    np.testing.assert_allclose(d.xyxy[0], EXPECTED, atol=1e-4)
    assert d.confidence[0] == pytest.approx(confidence, abs=1e-5)


def test_yolox_decoded_by_the_sdk_postamble(backend, tmp_path) -> None:
    pred = rows(5 + CLASSES, [12, 20, 16, 16, 0.9, 0, 0, 0.8])
    folder = sdk_folder(tmp_path, [HEAD], postamble=postamble(pred=pred), model_info=INFO)
    assert_one(detect(folder, backend), 0.72)


def test_yolox_raw_head_values(backend, tmp_path) -> None:
    ln2 = float(np.log(2))  # w, h = e^ln2 * stride 8 = 16
    pred = rows(5 + CLASSES, [0.5, 0.5, ln2, ln2, 0.9, 0, 0, 0.8])
    folder = sdk_folder(tmp_path, [HEAD], postamble=postamble(pred=pred), model_info=INFO,
                        version="1.0")
    assert_one(detect(folder, backend, decoder={"format": "yolox"}), 0.72)


def test_ultralytics_and_its_transpose(backend, tmp_path) -> None:
    pred = rows(4 + CLASSES, [12, 20, 16, 16, 0, 0, 0.72])
    wide = sdk_folder(tmp_path / "a", [HEAD], postamble=postamble(pred=pred.transpose(0, 2, 1)),
                      model_info=INFO)
    assert_one(detect(wide, backend), 0.72)
    tall = sdk_folder(tmp_path / "b", [HEAD], postamble=postamble(pred=pred), model_info=INFO,
                      version="1.0")
    assert_one(detect(tall, backend), 0.72)


def test_separate_boxes_and_scores(backend, tmp_path) -> None:
    scores = rows(CLASSES, [0, 0, 0.72])
    boxes = rows(4, [4, 12, 20, 28])
    folder = sdk_folder(tmp_path, [HEAD], postamble=postamble(scores=scores, boxes=boxes),
                        model_info=INFO)
    assert_one(detect(folder, backend), 0.72)


def test_four_class_boxes_and_scores_are_told_apart_by_name(backend, tmp_path) -> None:
    labels = ["cat", "dog", "bird", "fish"]
    scores, boxes = rows(4, [0, 0, 0.72, 0]), rows(4, [4, 12, 20, 28])
    folder = sdk_folder(tmp_path / "named", [HEAD], model_info=info(labels),
                        postamble=postamble(class_scores=scores, pred_boxes=boxes))
    assert_one(detect(folder, backend), 0.72)
    unnamed = sdk_folder(tmp_path / "unnamed", [HEAD], model_info=info(labels),
                         postamble=postamble(out_a=scores, out_b=boxes))
    with pytest.raises(ModelError, match="cannot tell boxes from scores"):
        detect(unnamed, backend)


def head_outputs(channels_of: list[int], fill: float, scale: float) -> list[Planted]:
    """One zero-point-free output per stride with ``channels_of[level]`` channels, the
    last column of each padded off (spatial padding) and channels padded to 8s."""
    return [Planted(np.full((SIZE // s, SIZE // s, c), fill, np.float32), scale,
                    spatial=(0, 0, 0, 1), channels=-(-c // 8) * 8)
            for s, c in zip((8, 16, 32), channels_of, strict=True)]


@pytest.mark.parametrize("classes", [3, 16, 64])
def test_dfl_heads_without_postamble(backend, tmp_path, classes) -> None:
    # SDK order: the three box heads (4 x 16 bins), then the three class heads. With
    # 16 classes the class head's channels are a multiple of 4 too (once taken for the
    # box head); with 64 both heads have 64 and the SDK's order tells them apart.
    boxes = head_outputs([64] * 3, 0.0, 0.25)
    cell = np.full(64, -32.0, np.float32)  # every side one stride from the centre: bin 1
    cell[[1, 17, 33, 49]] = 31.75
    boxes[0].values[2, 1] = cell
    heads = head_outputs([classes] * 3, -32.0, 0.25)
    heads[0].values[2, 1, 2] = 2.0  # logit 2: confidence 1 / (1 + e^-2)
    names = LABELS + [f"c{i}" for i in range(3, classes)]
    folder = sdk_folder(tmp_path, boxes + heads, model_info=info(names),
                        version="1.0")
    assert_one(detect(folder, backend), 1 / (1 + np.exp(-2.0)))


ANCHORS_V5 = [[16, 16, 8, 8, 4, 4], [32, 32, 24, 24, 48, 48], [64, 64, 96, 96, 128, 128]]


def yolov5_heads() -> list[Planted]:
    """Three anchors x (5 + 3) channels per stride; logits; only one anchor is an object."""
    heads = head_outputs([3 * (5 + CLASSES)] * 3, 0.0, 1 / 16)
    for head in heads:
        head.values.reshape(*head.values.shape[:2], 3, 5 + CLASSES)[..., 4] = -8.0
    # anchor 0 (16x16) of cell (1, 2): sigmoid(0) = 0.5 puts it at the cell's centre,
    # (2 * 0.5)^2 * anchor keeps the anchor's size
    heads[0].values[2, 1, : 5 + CLASSES] = [0, 0, 0, 0, 4, -8, -8, 4]
    return heads


def test_yolov5_anchor_heads(backend, tmp_path) -> None:
    folder = sdk_folder(tmp_path, yolov5_heads(), model_info=INFO)
    sigmoid4 = 1 / (1 + np.exp(-4.0))
    assert_one(detect(folder, backend, decoder={"anchors": ANCHORS_V5}), sigmoid4 ** 2)
    with pytest.raises(ModelError, match="one raw head per stride.*anchors=yolov5"):
        detect(folder, backend)  # the anchors are in the SDK's YAML, not the folder
    with pytest.raises(ModelError, match="look like logits.*sigmoid=true"):
        detect(folder, backend, decoder={"anchors": ANCHORS_V5, "sigmoid": False})


def test_misspelt_or_malformed_decoder_settings_are_refused(tmp_path) -> None:
    folder = sdk_folder(tmp_path, yolov5_heads(), model_info=INFO)
    with pytest.raises(axrun.ParameterError, match="unknown setting.*anchor;"):
        detect(folder, "emulator", decoder={"anchor": ANCHORS_V5})
    with pytest.raises(axrun.ParameterError, match="strides must be a list"):
        detect(folder, "emulator", decoder={"anchors": ANCHORS_V5, "strides": 8})
    with pytest.raises(ModelError, match="same number of positive w, h pairs"):
        detect(folder, "emulator", decoder={"anchors": ANCHORS_V5[:2]})


def space_to_depth() -> onnx.ModelProto:
    """YOLOv5's focus layer: [1, 3, 32, 32] → [1, 12, 16, 16] (the four pixel phases)."""
    nodes, inits, phases = [], [], []
    for i, (y, x) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        for name, value in (("s", [y, x]), ("e", [SIZE, SIZE]), ("a", [2, 3]), ("k", [2, 2])):
            inits.append(onnx.numpy_helper.from_array(np.array(value, np.int64), f"{name}{i}"))
        nodes.append(helper.make_node("Slice", ["image", f"s{i}", f"e{i}", f"a{i}", f"k{i}"],
                                      [f"phase{i}"]))
        phases.append(f"phase{i}")
    nodes.append(helper.make_node("Concat", phases, ["focus"], axis=1))
    graph = helper.make_graph(
        nodes, "focus",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("focus", TensorProto.FLOAT, [1, 12, SIZE // 2,
                                                                    SIZE // 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_yolov5_with_its_focus_preamble(backend, tmp_path) -> None:
    # The device input is the preamble's output: 16x16, 12 channels (padded to 16).
    folder = sdk_folder(tmp_path, yolov5_heads(), preamble=space_to_depth(), size=SIZE // 2,
                        input_channels=12, input_padding=(0, 0, 0, 0, 0, 0, 0, 4),
                        model_info=INFO)
    sigmoid4 = 1 / (1 + np.exp(-4.0))
    assert_one(detect(folder, backend, decoder={"anchors": ANCHORS_V5}), sigmoid4 ** 2)


def test_the_focus_preamble_writes_the_phases_into_the_device_input(tmp_path) -> None:
    from axrun.tasks.preamble import PreambleInput

    folder = axrun.load_model_folder(sdk_folder(
        tmp_path, yolov5_heads(), preamble=space_to_depth(), size=SIZE // 2,
        input_channels=12, input_padding=(0, 0, 1, 1, 0, 2, 0, 4), model_info=INFO))
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), np.uint8)
    writer = PreambleInput(axrun.preprocess_recipe(folder, "detect"), folder)
    dest = np.full(folder.manifest.inputs[0].shape[1:], -128, np.int8)
    writer(image, dest)
    rgb = image[..., ::-1].astype(np.float32) / 255
    phases = [rgb[y::2, x::2] for y, x in ((0, 0), (1, 0), (0, 1), (1, 1))]
    expected = np.clip(np.round(np.concatenate(phases, 2) * 255 - 128), -128, 127)
    np.testing.assert_array_equal(dest[1:17, 0:16, :12], expected.astype(np.int8))
    assert (dest[:, :, 12:] == -128).all() and (dest[0] == -128).all()  # the padding


def test_an_sdk_yolox_folder_needs_its_preprocessing_stated(tmp_path) -> None:
    pred = rows(5 + CLASSES, [12, 20, 16, 16, 0.9, 0, 0, 0.8])
    folder = sdk_folder(tmp_path, [HEAD], postamble=postamble(pred=pred), model_info=INFO)
    with pytest.raises(ModelError, match="normalize differently.*--mean and --std"):
        axrun.load(folder)


@pytest.mark.parametrize(("change", "message"), [
    ({("output", 0): {"scale": 0.2}},
     r"output 0 differs .*scale 0.2 \(runtime\) vs 0.1 \(manifest\)"),
    ({("input", 0): {"padding": [], "scale": 1.0, "zero_point": 0}},
     "input 0 differs .*padding .*found no manifest.json"),
])
def test_the_runtime_tensor_info_must_agree_with_the_manifest(monkeypatch, tmp_path, change,
                                                              message) -> None:
    # A runtime that reads another manifest than axrun would get wrong numbers.
    calls: list[str] = []
    metis_standin.install(monkeypatch, tensor_changes=change, calls=calls)
    pred = rows(5 + CLASSES, [12, 20, 16, 16, 0.9, 0, 0, 0.8])
    folder = sdk_folder(tmp_path, [HEAD], postamble=postamble(pred=pred), model_info=INFO)
    with pytest.raises(ModelError, match=message):
        detect(folder, "metis")
    assert calls[-1] == "Context.release"  # nothing left held


def test_an_sdk_classifier_runs_its_postamble(backend, tmp_path) -> None:
    # Logits 0..4 padded from 5 to 8 classes; the postamble negates them, so the
    # classes come out in reverse: proof that it ran on what the device gave.
    logits = Planted(np.arange(5, dtype=np.float32).reshape(1, 1, 5), 0.5, channels=8)
    negate = helper.make_graph(
        [helper.make_node("Flatten", ["output0"], ["flat"]),
         helper.make_node("Neg", ["flat"], ["scores"])], "negate",
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, 1, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 5])])
    names = ["a", "b", "c", "d", "e"]
    folder = sdk_folder(tmp_path, [logits], size=8, version="1.0",
                        postamble=helper.make_model(negate, opset_imports=[
                            helper.make_opsetid("", 17)]),
                        model_info={"task_category": "Classification", "labels": names})
    with axrun.load(folder, backend=backend, top_k=3) as model:
        c = model.predict([PHOTO])[0].classification
    assert c is not None and list(c.label) == ["a", "b", "c"]


@pytest.mark.parametrize("shape", [[1, 5], [1, 5, 1, 1], [1, 1, 1, 5]])
def test_a_classifier_postamble_ending_in_softmax_gives_its_probabilities(tmp_path,
                                                                          shape) -> None:
    logits = Planted(np.array([[[0.0, 1.0, 3.0, 0.5, 2.0]]], np.float32), 0.5, channels=8)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["output0"], ["flat"]),
         helper.make_node("Softmax", ["flat"], ["p"], axis=1),
         helper.make_node("Reshape", ["p", "shape"], ["scores"])], "softmax",
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 5, 1, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, shape)],
        [onnx.numpy_helper.from_array(np.array(shape, np.int64), "shape")])
    folder = sdk_folder(tmp_path, [logits], size=8, postamble=helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]),
        model_info={"task_category": "Classification", "labels": list("abcde")})
    with axrun.load(folder, top_k=2) as model:
        c = model.predict([PHOTO])[0].classification
    e = np.exp([0.0, 1.0, 3.0, 0.5, 2.0])
    assert list(c.label) == ["c", "e"]
    np.testing.assert_allclose(c.confidence, (e / e.sum())[[2, 4]], rtol=1e-5)


def test_the_command_line_runs_an_sdk_folder_with_backend_metis(monkeypatch, tmp_path) -> None:
    import json

    import cv2
    from typer.testing import CliRunner

    from axrun.cli import app

    calls: list[str] = []
    metis_standin.install(monkeypatch, calls=calls)
    folder = sdk_folder(tmp_path, yolov5_heads(), model_info=INFO)
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), PHOTO)
    result = CliRunner().invoke(app, [
        "--backend", "metis", "detect", "-m", str(folder), str(photo), "-o", "-", "-q",
        "--decoder", f"anchors={json.dumps(ANCHORS_V5).replace(' ', '')}"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["detections"][0]["box"] == EXPECTED
    assert record["detections"][0]["label"] == "bird"
    assert "load_model_instance" in calls and calls[-1] == "Context.release"


def test_preprocessing_defaults_follow_the_preambles_input_size(tmp_path) -> None:
    # The device input is 16x16 (after the focus); the image the network takes is 32x32.
    folder = axrun.load_model_folder(sdk_folder(
        tmp_path, yolov5_heads(), preamble=space_to_depth(), size=SIZE // 2,
        input_channels=12, input_padding=(0, 0, 0, 0, 0, 0, 0, 4)))
    assert axrun.preprocess_recipe(folder, "classify").resize == round(32 * 256 / 224)


def test_metadata_that_disagrees_with_the_outputs_is_an_error(tmp_path) -> None:
    # From a hostile review: each of these gave a wrong answer without an error.
    # Anchors of 4 pairs on heads of 3 x (5 + 3) channels: 24 / 4 - 5 = 1 class.
    v5 = sdk_folder(tmp_path / "v5", yolov5_heads(), model_info=INFO)
    four = [[16, 16, 8, 8, 4, 4, 2, 2]] * 3
    with pytest.raises(ModelError, match="labels list has 3 names; the model has 1 classes"):
        detect(v5, "emulator", decoder={"anchors": four})
    # A pose head [1, 4 + 1 + 51, A] with empty labels: num_classes says 1, which fits
    # no layout (it was read as 52 classes, a keypoint as a score of 22).
    pose = sdk_folder(tmp_path / "pose", [HEAD], postamble=postamble(
        pred=rows(56, [12, 20, 16, 16, 0.9] + [22.0] * 51).transpose(0, 2, 1)),
        model_info={"task_category": "ObjectDetection|KeypointDetection", "labels": [],
                    "num_classes": 1})
    with pytest.raises(ModelError, match="fits no known layout for the model's 1 classes"):
        detect(pose, "emulator")
    # ... and with the classes unknown, the keypoint read as a score stops the run.
    with pytest.raises(ModelError, match="a score of 22, not a probability"):
        detect(pose, "emulator", labels=[f"c{i}" for i in range(52)])
    # Labels and num_classes of model_info.json that disagree.
    pred = rows(4 + 4, [12, 20, 16, 16, 0, 0, 0.72, 0])
    odd = sdk_folder(tmp_path / "odd", [HEAD], postamble=postamble(pred=pred),
                     model_info={**INFO, "num_classes": 4})
    with pytest.raises(ModelError, match="labels has 3 names but num_classes says 4"):
        detect(odd, "emulator")
    assert_one(detect(odd, "emulator", labels=[*LABELS, "fish"]), 0.72)  # --labels settles it


def test_device_outputs_no_stride_reads_are_an_error(tmp_path) -> None:
    # A P6 model: a 4th pair of heads at stride 64 (it was left out without a word).
    sides = (8, 4, 2, 1)  # a 64x64 input at strides 8, 16, 32, 64
    boxes = [Planted(np.zeros((n, n, 64), np.float32), 0.25) for n in sides]
    heads = [Planted(np.full((n, n, CLASSES), -32.0, np.float32), 0.25) for n in sides]
    folder = sdk_folder(tmp_path, boxes + heads, size=64, model_info=INFO)
    with pytest.raises(ModelError, match=r"output\(s\) \[3, 7\] .*strides=\[...\]"):
        detect(folder, "emulator")
    assert len(detect(folder, "emulator", decoder={"strides": [8, 16, 32, 64]})) == 0


def test_a_model_info_of_another_kind_says_so_when_no_task_is_given(tmp_path) -> None:
    folder = sdk_folder(tmp_path, [HEAD], model_info={"task_category": "KeypointDetection"})
    with pytest.raises(axrun.UsageError, match="says keypointdetection: axrun runs classify "
                                               "and detect"):
        axrun.load(folder)


def test_the_decoder_help_names_every_format_and_setting() -> None:
    from typer.testing import CliRunner

    from axrun.cli import app
    from axrun.tasks.detect import DECODER_SETTINGS, FORMATS

    text = " ".join(CliRunner().invoke(app, ["detect", "--help"], terminal_width=300)
                    .stdout.split())
    assert all(f in text for f in FORMATS) and all(f"{k}=" in text for k in DECODER_SETTINGS)


def test_video_frames_converted_small_map_back_to_the_frames_pixels(tmp_path) -> None:
    # A 64x56 video for a 32x32 network: each frame's YUV planes are shrunk to half
    # before the colour conversion; the planted box must land where it does on the
    # photo itself, and the record keeps the frame's size.
    import sys
    from fractions import Fraction

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from media import write_video

    from axrun.sources import expand

    clip = write_video(tmp_path / "clip.mp4", [0, 0.1, 0.2], size=(64, 56), rate=Fraction(10))
    (frame,) = [i for i in expand([str(clip)]) if i.frame == 0]
    assert frame.planes is not None  # kept in YUV until a host thread converts it
    pred = rows(5 + CLASSES, [12, 20, 16, 16, 0.9, 0, 0, 0.8])
    folder = sdk_folder(tmp_path, [HEAD], postamble=postamble(pred=pred), model_info=INFO)
    recipe = axrun.preprocess_recipe(axrun.load_model_folder(folder), "detect")
    with axrun.load(folder, recipe=recipe) as model:
        got = model.predict([str(clip)])
    assert len(got) == 3
    for result in got:
        assert (result.geometry.width, result.geometry.height) == (64, 56)
        np.testing.assert_allclose(result.detections.xyxy[0], EXPECTED, atol=1e-4)
