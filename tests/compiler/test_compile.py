"""``axrun compile`` end to end on tiny synthetic models, and every error path."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from modelgen import classifier_network, tiny_detector_network
from onnx import TensorProto, helper
from typer.testing import CliRunner

from axrun import emulator as axr
from axrun.cli import app
from axrun.compiler import CompileOptions, compile_model
from axrun.errors import CompileError
from axrun.modelfolder import load_model_folder
from axrun.preprocess import Preprocessor, PreprocessRecipe
from axrun.tensors import depad, dequantize

runner = CliRunner()
COMPILE = ["compile", "--holdout", "0"]  # no fidelity report: the test networks are no real ones
RECIPE = PreprocessRecipe(mode="letterbox", color="bgr", std=(255.0, 255.0, 255.0))


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(6):
        base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = cv2.resize(base, (40 + 7 * i, 30 + 5 * i), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"img{i}.png"), image)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def detector_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "tinydet.onnx"
    onnx.save(tiny_detector_network(16), path)
    return path


def options(src: Path, out: Path, calib: Path, **kw) -> CompileOptions:
    kw.setdefault("task", "detect")  # the test networks' outputs do not say it for sure
    kw.setdefault("holdout", 0)  # their outputs are no real classes or boxes to compare
    return CompileOptions(model=src, output=out, calibration=calib, recipe=RECIPE, **kw)


def test_compile_with_cut_runs_on_emulator_close_to_float(detector_onnx, calib, tmp_path) -> None:
    out = compile_model(options(detector_onnx, tmp_path / "m", calib, task="detect",
                                postamble_from=("head_a", "head_b"), spatial_pad=(1, 1, 1, 15)))
    folder = load_model_folder(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "axrun.json", "manifest.json", "model.json", "model.onnx", "postprocess_graph.onnx"]
    assert folder.manifest.inputs[0].shape == (1, 18, 32, 4)
    assert [o.name for o in folder.manifest.outputs] == ["head_a", "head_b"]
    assert folder.sidecar.task == "detect" and folder.sidecar.preprocess == RECIPE

    image = cv2.imread(str(calib / "img3.png"))
    pre = Preprocessor(RECIPE, folder.manifest.inputs[0])
    with axr.Context() as ctx:
        model = ctx.load_model(str(folder.model_json))
        inst = ctx.device_connect().load_model_instance(model)
        x = pre.new_buffer()
        pre(image, x[0])
        outs = [np.zeros(i.shape, np.int8) for i in model.outputs()]
        inst.run([x], outs)
    heads = {
        spec.name: dequantize(depad(o, spec.padding), spec.scale, spec.zero_point)
        .transpose(0, 3, 1, 2)
        for o, spec in zip(outs, folder.manifest.outputs, strict=True)
    }
    post = ort.InferenceSession(str(folder.postamble_path), providers=["CPUExecutionProvider"])
    (scores,) = post.run(None, heads)
    full = ort.InferenceSession(str(detector_onnx), providers=["CPUExecutionProvider"])
    fx = dequantize(depad(x, folder.manifest.inputs[0].padding), folder.manifest.inputs[0].scale,
                    folder.manifest.inputs[0].zero_point).transpose(0, 3, 1, 2)
    (expected,) = full.run(None, {"images": fx})
    assert np.abs(scores - expected).max() < 0.05


def test_manifest_round_trips_quantizer_parameters(detector_onnx, calib, tmp_path) -> None:
    out = compile_model(options(detector_onnx, tmp_path / "m", calib,
                                postamble_from=("head_a", "head_b")))
    manifest = json.loads((out / "manifest.json").read_text())
    folder = load_model_folder(out)
    for key in ("input_shapes", "output_shapes", "input_shapes_original",
                "output_shapes_original", "quantize_params", "dequantize_params",
                "n_padded_ch_inputs", "n_padded_ch_outputs", "postprocess_graph",
                "preprocess_graph", "model_lib_file", "input_dtypes", "output_dtypes",
                "manifest_version", "quantized_model_file"):
        assert key in manifest, key
    assert manifest["input_shapes_original"] == [[1, 3, 16, 16]]
    assert manifest["output_shapes_original"] == [[1, 5, 16, 16], [1, 7, 8, 8]]
    assert [list(p) for p in manifest["dequantize_params"]] == [
        [o.scale, o.zero_point] for o in folder.manifest.outputs]
    assert manifest["n_padded_ch_outputs"][0] == [0, 0, 0, 0, 0, 0, 0, 59]


def test_whole_network_on_device_without_cut(calib, tmp_path) -> None:
    src = tmp_path / "cls.onnx"
    onnx.save(classifier_network(1, 16, 10), src)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"c{i}" for i in range(10)))
    out = compile_model(options(src, tmp_path / "cls", calib, task="classify", labels=labels))
    folder = load_model_folder(out)
    assert folder.postamble_path is None and folder.labels[9] == "c9"
    assert folder.manifest.outputs[0].shape == (1, 1, 1, 64)
    wrong = tmp_path / "five.txt"
    wrong.write_text("a\nb\nc\nd\ne\n")
    with pytest.raises(CompileError, match="--labels has 5 names but the model outputs 10"):
        compile_model(options(src, tmp_path / "cls2", calib, task="classify", labels=wrong))


def test_opset_11_is_upgraded(calib, tmp_path) -> None:
    net = classifier_network(1, 16, 10)
    net.opset_import[0].version = 11
    src = tmp_path / "old.onnx"
    onnx.save(net, src)
    out = compile_model(options(src, tmp_path / "m", calib, task="classify"))
    model = onnx.load(str(out / "model.onnx"))
    assert model.opset_import[0].version >= 13


def test_dynamic_batch_needs_input_shape(calib, tmp_path) -> None:
    src = tmp_path / "dyn.onnx"
    onnx.save(tiny_detector_network(16, batch="N"), src)
    with pytest.raises(CompileError, match=r"dynamic shape \['N', 3, 16, 16\].*--input-shape"):
        compile_model(options(src, tmp_path / "m", calib))
    assert not (tmp_path / "m").exists()
    out = compile_model(options(src, tmp_path / "m", calib, input_shape=(2, 3, 16, 16),
                                postamble_from=("head_a", "head_b")))
    assert load_model_folder(out).manifest.batch == 2


def test_unknown_cut_lists_candidates(detector_onnx, calib, tmp_path) -> None:
    with pytest.raises(CompileError, match="no tensor named 'head_c'.*candidates:.*head_a"):
        compile_model(options(detector_onnx, tmp_path / "m", calib, postamble_from=("head_c",)))
    assert not (tmp_path / "m").exists()


def test_cut_that_leaves_the_postamble_incomplete(detector_onnx, calib, tmp_path) -> None:
    with pytest.raises(CompileError, match="after the cut still needs 'r1'.*Conv"):
        compile_model(options(detector_onnx, tmp_path / "m", calib, postamble_from=("head_a",)))


def test_unsupported_ops_are_named(calib, tmp_path) -> None:
    net = classifier_network(1, 16, 10)
    k = helper.make_tensor("k", TensorProto.INT64, [1], [3])
    net.graph.initializer.append(k)
    net.graph.node.append(helper.make_node("TopK", ["logits", "k"], ["vals", "idx"], axis=1,
                                           name="top3"))
    del net.graph.output[:]
    net.graph.output.extend([helper.make_tensor_value_info("vals", TensorProto.FLOAT, [1, 3])])
    src = tmp_path / "topk.onnx"
    onnx.save(net, src)
    with pytest.raises(CompileError,
                       match=r"unsupported operators.*TopK \(top3\).*--postamble-from"):
        compile_model(options(src, tmp_path / "m", calib))
    out = compile_model(options(src, tmp_path / "m", calib, postamble_from=("logits",),
                                task="classify"))
    assert load_model_folder(out).postamble_path is not None


def test_calibration_folder_errors(detector_onnx, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CompileError, match="no images"):
        compile_model(options(detector_onnx, tmp_path / "m", empty))
    with pytest.raises(CompileError, match="not a folder"):
        compile_model(options(detector_onnx, tmp_path / "m", tmp_path / "missing"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(CompileError, match="none of the images could be read"):
        compile_model(options(detector_onnx, tmp_path / "m", broken))
    assert not (tmp_path / "m").exists()


def test_rerun_replaces_atomically_and_failure_keeps_old(detector_onnx, calib, tmp_path) -> None:
    dest = tmp_path / "m"
    compile_model(options(detector_onnx, dest, calib, postamble_from=("head_a", "head_b")))
    compile_model(options(detector_onnx, dest, calib))
    assert not (dest / "postprocess_graph.onnx").exists()  # the old folder's, gone
    before = sorted(p.name for p in dest.iterdir())
    with pytest.raises(CompileError):
        compile_model(options(detector_onnx, dest, calib, postamble_from=("nope",)))
    assert sorted(p.name for p in dest.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_errors_are_one_line(detector_onnx, calib, tmp_path) -> None:
    result = runner.invoke(app, [*COMPILE, str(detector_onnx), "-o", str(tmp_path / "m"),
                                 "--calibration", str(calib), "--postamble-from", "zzz",
                                 "--preset", "yolox"])
    assert result.exit_code == 3 and len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, [*COMPILE, str(tmp_path / "missing.onnx"), "-o",
                                 str(tmp_path / "m"), "--calibration", str(calib),
                                 "--preset", "yolox"])
    assert result.exit_code == 3 and "no such file" in result.stderr
    result = runner.invoke(app, [*COMPILE, str(detector_onnx), "-o", str(tmp_path / "m"),
                                 "--calibration", str(calib), "--preprocess", "mode"])
    assert result.exit_code == 2 and "expected key=value" in result.stderr
    ok = runner.invoke(app, [*COMPILE, str(detector_onnx), "-o", str(tmp_path / "m"),
                             "--calibration", str(calib), "--postamble-from", "head_a",
                             "--postamble-from", "head_b", "--task", "detect",
                             "--preprocess", "mode=letterbox,color=bgr,std=255",
                             "--decoder", "format=yolox,strides=[8,16]"])
    assert ok.exit_code == 0, ok.output
    side = json.loads((tmp_path / "m" / "axrun.json").read_text())
    assert side["decoder"] == {"format": "yolox", "strides": [8, 16]}
    assert side["preprocess"]["std"] == [255.0, 255.0, 255.0]


def test_int16_mixed_precision(detector_onnx, calib, tmp_path) -> None:
    with pytest.raises(CompileError, match="--int16: no tensor named 'nope'"):
        compile_model(options(detector_onnx, tmp_path / "m", calib, int16=("nope",),
                              postamble_from=("head_a", "head_b")))
    out = compile_model(options(detector_onnx, tmp_path / "m", calib, int16=("r1",),
                                postamble_from=("head_a", "head_b")))
    device = onnx.load(str(out / "model.onnx"))
    q = [n for n in device.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "r1"]
    assert q, "r1 is quantized"
    zp = next(i for i in device.graph.initializer if i.name == q[0].input[2])
    assert zp.data_type == TensorProto.INT16
    assert json.loads((out / "axrun.json").read_text())["int16_tensors"] == ["r1"]


def test_element_wise_activations_are_not_quantized_on_their_own(calib, tmp_path) -> None:
    """SiLU = x * sigmoid(x) is one fused int8 op: no Q/DQ between Sigmoid and Mul."""
    net = classifier_network(1, 16, 10)
    relu = next(n for n in net.graph.node if n.op_type == "Relu")
    relu.op_type, relu.output[0] = "Sigmoid", "sig"
    net.graph.node.insert(list(net.graph.node).index(relu) + 1,
                          helper.make_node("Mul", ["c1", "sig"], ["r1"]))
    src = tmp_path / "silu.onnx"
    onnx.save(net, src)
    out = compile_model(options(src, tmp_path / "m", calib))
    device = onnx.load(str(out / "model.onnx"))
    assert not [n for n in device.graph.node if n.op_type == "QuantizeLinear"
                and n.input[0] == "sig"]
    assert [n for n in device.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "r1"]


def test_compile_without_a_recipe_is_refused(detector_onnx, calib, tmp_path) -> None:
    """Raw 0-255 pixels into a network trained on normalized ones makes a model that
    calls a bus a bath towel: compile does not guess the recipe."""
    out = tmp_path / "m"
    result = runner.invoke(app, [*COMPILE, str(detector_onnx), "-o", str(out),
                                 "--calibration", str(calib), "--task", "detect"])
    assert result.exit_code == 2 and "--preprocess" in result.stderr
    assert "imagenet-torchvision" in result.stderr and not out.exists()
    result = runner.invoke(app, [*COMPILE, str(detector_onnx), "-o", str(out),
                                 "--calibration", str(calib), "--preset", "nope"])
    assert result.exit_code == 2 and "--preset must be one of" in result.stderr
    # the model may say it itself
    model = onnx.load(str(detector_onnx))
    onnx.helper.set_model_props(model, {"axrun.preprocess": "mode=letterbox,std=255"})
    tagged = tmp_path / "tagged.onnx"
    onnx.save(model, str(tagged))
    ok = runner.invoke(app, [*COMPILE, str(tagged), "-o", str(out), "--calibration",
                             str(calib), "--postamble-from", "head_a",
                             "--postamble-from", "head_b", "--decoder",
                             "format=yolox,strides=[8,16]", "--task", "detect"])
    assert ok.exit_code == 0, ok.stderr
    assert "preprocessing from the model's axrun.preprocess metadata" in ok.stderr


def test_the_task_is_read_from_the_outputs_only_when_they_say_it(calib, tmp_path) -> None:
    src = tmp_path / "cls.onnx"
    onnx.save(classifier_network(1, 16, 10), src)
    ok = runner.invoke(app, [*COMPILE, str(src), "-o", str(tmp_path / "c"), "--calibration",
                             str(calib), "--preset", "imagenet-torchvision"])
    assert ok.exit_code == 0, ok.stderr
    assert "task: classify (one output [1, 10]: class scores; --task to say otherwise)" \
        in ok.stderr
    assert json.loads((tmp_path / "c" / "axrun.json").read_text())["task"] == "classify"
    # a flattened [N, k] output with decoder settings: both readings fit, so it asks
    det = tmp_path / "det.onnx"
    onnx.save(tiny_detector_network(16), det)
    refused = runner.invoke(app, [*COMPILE, str(det), "-o", str(tmp_path / "d"),
                                  "--calibration", str(calib), "--preset", "yolox",
                                  "--postamble-from", "head_a", "--postamble-from", "head_b",
                                  "--decoder", "format=yolox"])
    assert refused.exit_code == 3 and "give --task classify or --task detect" in refused.stderr
    assert not (tmp_path / "d").exists()


def test_calibration_is_spread_over_sub_folders(tmp_path) -> None:
    """250 dark images in a_night/ and 250 bright ones in b_day/: the first 200 names
    in sorted order were all night ones (pixel values 0-59); now both halves."""
    from axrun.compiler.quantize import calibration_images, check_calibration
    from axrun.preprocess import network_input

    rng = np.random.default_rng(0)
    for name, low, high in (("a_night", 0, 60), ("b_day", 150, 256)):
        (tmp_path / name).mkdir()
        for i in range(250):
            pixels = rng.integers(low, high, (8, 8, 3), dtype=np.uint8)
            cv2.imwrite(str(tmp_path / name / f"{i:03d}.png"), pixels)
    paths, held_out, said = calibration_images(tmp_path, 200)
    assert held_out == []
    assert sum(p.parent.name == "a_night" for p in paths) == 100
    assert sum(p.parent.name == "b_day" for p in paths) == 100
    assert said == "calibration: 200 of 500 images (a_night/ 100 of 250, b_day/ 100 of 250)"
    assert calibration_images(tmp_path, 200)[0] == paths  # the same sample every time
    recipe = PreprocessRecipe(mode="stretch", mean=(0.0,) * 3, std=(1.0,) * 3)
    samples = [network_input(cv2.imread(str(p)), recipe, (8, 8))[0] for p in paths]
    values = np.concatenate(samples)
    assert values.min() <= 5 and values.max() >= 250  # the input range covers 0-250
    assert check_calibration(samples, recipe) == []
    night = [s for s, p in zip(samples, paths, strict=True) if p.parent.name == "a_night"]
    assert "span pixel values" in check_calibration(night, recipe)[0]


def test_held_out_images_keep_every_sub_folder_in_calibration(tmp_path) -> None:
    """40 day images and 2 night ones: the 8 held out come from day/ in proportion,
    and never a sub-folder's last image; none of them is calibrated on."""
    from axrun.compiler.quantize import calibration_images

    for name, count in (("a_day", 40), ("b_night", 2)):
        (tmp_path / name).mkdir()
        for i in range(count):
            cv2.imwrite(str(tmp_path / name / f"{i:02d}.png"), np.zeros((4, 4, 3), np.uint8))
    paths, held_out, said = calibration_images(tmp_path, 200, holdout=20)
    assert said == ("calibration: 34 of 42 images (a_day/ 32 of 40, b_night/ 2 of 2); "
                    "8 others held out to check the result")
    assert len(held_out) == 8 and not set(held_out) & set(paths)
    assert {p.parent.name for p in held_out} == {"a_day"}


def test_held_out_shares_pass_on_what_single_image_folders_cannot_give() -> None:
    from axrun.compiler.quantize import _held_out_shares

    sizes = {f"one{i:02d}": 1 for i in range(50)} | {"big": 50}
    assert _held_out_shares(sizes, 20) == {**dict.fromkeys(sizes, 0), "big": 20}
    assert sum(_held_out_shares({"a": 3, "b": 2}, 5).values()) == 3  # each keeps one
    assert _held_out_shares({"a": 10}, 0) == {"a": 0}


def test_compile_compares_held_out_images_and_records_softmax_scores(calib, tmp_path) -> None:
    """A classifier ending in Softmax gives probabilities (no second softmax in
    classify); one of the 6 images is held out and compared: fidelity.json, which
    info shows, and which names where the float side's recipe came from."""
    net = classifier_network(1, 16, 10)
    net.graph.node[-1].output[0] = "logits_raw"
    net.graph.node.append(helper.make_node("Softmax", ["logits_raw"], ["logits"], axis=1))
    src = tmp_path / "softmax.onnx"
    onnx.save(net, src)
    out = compile_model(options(src, tmp_path / "m", calib, task="classify", holdout=20))
    side = json.loads((out / "axrun.json").read_text())
    assert side["decoder"] == {"scores": "probabilities"} and side["calibration_images"] == 5
    fidelity = json.loads((out / "fidelity.json").read_text())
    assert fidelity["images"] == 1 and fidelity["metrics"]["top1_agreement"] in (0.0, 1.0)
    assert fidelity["metrics"]["mean_abs_score_diff"] < 0.2  # probabilities, not re-softmaxed
    assert fidelity["float_recipe"].startswith("compile's, on both sides")
    info = runner.invoke(app, ["info", str(out)])
    assert "fidelity against softmax.onnx on 1 held-out images" in info.stdout


def test_compile_never_replaces_a_folder_with_other_files(detector_onnx, calib, tmp_path) -> None:
    """compile replaces its output folder whole: a folder holding anything it did not
    write (notes, the calibration photos themselves) is refused before any work."""
    dest = tmp_path / "m"
    compile_model(options(detector_onnx, dest, calib, postamble_from=("head_a", "head_b")))
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(CompileError, match=r"holds files axrun compile did not write "
                                           r"\(notes.txt\)"):
        compile_model(options(detector_onnx, dest, calib))
    assert (dest / "notes.txt").read_text() == "mine"
    photos = sorted(p.name for p in calib.iterdir())
    result = runner.invoke(app, [*COMPILE, str(detector_onnx), "-o", str(calib),
                                 "--calibration", str(calib), "--preset", "yolox"])
    assert result.exit_code == 3 and "holds files axrun compile did not write" in result.stderr
    assert sorted(p.name for p in calib.iterdir()) == photos
