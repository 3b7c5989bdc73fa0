"""Classification top-k and scores against a plain float reference."""

from __future__ import annotations

import numpy as np
import pytest

from axrun.errors import UsageError
from axrun.modelfolder import load_model_folder
from axrun.preprocess import PreprocessRecipe
from axrun.tasks.classify import Classifier, softmax
from axrun.tensors import dequantize


def test_top_k_and_softmax_match_the_float_reference(tiny) -> None:
    task = Classifier(load_model_folder(tiny(kind="classifier", classes=10).path), top_k=4,
                      recipe=PreprocessRecipe())
    rng = np.random.default_rng(0)
    for _ in range(100):
        q = rng.integers(-128, 128, 10).astype(np.int8)
        got = task.classify(q)
        ref = softmax(dequantize(q, task.spec.scale, task.spec.zero_point).astype(np.float64))
        order = np.argsort(-q.astype(int), kind="stable")[:4]
        np.testing.assert_array_equal(got.class_id, order)
        np.testing.assert_allclose(got.confidence, ref[order], rtol=1e-5)
        assert got.label == tuple(f"class_{i}" for i in order)


def test_ties_go_to_the_lower_class_id(tiny) -> None:
    task = Classifier(load_model_folder(tiny(kind="classifier", classes=10).path), top_k=3,
                      recipe=PreprocessRecipe())
    q = np.array([0, 5, 5, 1, 5, 0, 0, 0, 0, 0], np.int8)
    assert list(task.classify(q).class_id) == [1, 2, 4]
    extremes = np.array([-128, 127, -128, 126, 127, -127, 0, 0, 0, 0], np.int8)
    assert list(task.classify(extremes).class_id) == [1, 4, 3]


def test_probabilities_are_dequantized_not_softmaxed(tiny) -> None:
    folder = load_model_folder(tiny(kind="classifier", classes=10).path)
    task = Classifier(folder, top_k=2, scores="probabilities", recipe=PreprocessRecipe())
    q = np.arange(10, dtype=np.int8)
    got = task.classify(q)
    np.testing.assert_allclose(got.confidence, dequantize(q[[9, 8]], task.spec.scale,
                                                      task.spec.zero_point))


def test_bad_options(tiny) -> None:
    folder = load_model_folder(tiny(kind="classifier", classes=10).path)
    # Library errors name the parameter (the command line names its flag instead),
    # and are ValueErrors as well as axrun's own.
    with pytest.raises(ValueError, match=r"^top_k must be at least 1 \(got 0\)$"):
        Classifier(folder, top_k=0, recipe=PreprocessRecipe())
    with pytest.raises(UsageError, match="scores must be one of logits, probabilities"):
        Classifier(folder, scores="odds", recipe=PreprocessRecipe())
    assert Classifier(folder, top_k=50, recipe=PreprocessRecipe()).top_k == 10


def test_a_classifiers_postamble_runs(tiny, tmp_path) -> None:
    # The SDK may cut a classifier's tail into postprocess_graph.onnx; axrun ignored it.
    # This one negates the scores: the ranking must come out reversed.
    import json
    import shutil

    import onnx
    from onnx import TensorProto, helper

    import axrun

    folder = tmp_path / "m"
    shutil.copytree(tiny(kind="classifier", classes=10).path, folder)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["logits"], ["f"]),
         helper.make_node("Neg", ["f"], ["scores"])], "negate",
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10, 1, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])])
    image = np.random.default_rng(3).integers(0, 256, (20, 20, 3), np.uint8)
    with axrun.load(folder, top_k=10) as model:
        plain = model.predict([image])[0].classification
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
              folder / "post.onnx")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["postprocess_graph"] = "post.onnx"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with axrun.load(folder, top_k=10) as model:
        negated = model.predict([image])[0].classification
    assert plain is not None and negated is not None
    score_of = dict(zip(plain.class_id.tolist(), plain.confidence.tolist(), strict=True))
    # reversed: the lowest-scored class comes first (ties go to the lower id either way)
    assert score_of[int(negated.class_id[0])] == min(score_of.values())
    assert score_of[int(negated.class_id[-1])] == max(score_of.values())
    assert negated.confidence.sum() == pytest.approx(1.0, abs=1e-5)  # softmax of the logits


def test_a_preamble_runs_between_preprocessing_and_quantization(tiny, tmp_path) -> None:
    # An identity preamble must give exactly the results of no preamble (the float path
    # quantizes as the fused one does); a preamble that blanks the image must not.
    import json
    import shutil

    import onnx
    from onnx import TensorProto, helper

    import axrun

    def with_preamble(op: str) -> object:
        folder = tmp_path / op
        shutil.copytree(tiny(kind="classifier", classes=10).path, folder)
        nodes = [helper.make_node(op, ["image"], ["x"])] if op == "Identity" else [
            helper.make_node("Sub", ["image", "image"], ["x"])]
        graph = helper.make_graph(
            nodes, op, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                  folder / "pre.onnx")
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["preprocess_graph"] = "pre.onnx"
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return folder

    images = [np.random.default_rng(i).integers(0, 256, (20, 30, 3), np.uint8)
              for i in range(4)]

    def results(folder) -> list[list[int]]:
        with axrun.load(folder, top_k=10) as model:
            return [r.classification.class_id.tolist() for r in model.predict(images)]

    plain = results(tiny(kind="classifier", classes=10).path)
    assert results(with_preamble("Identity")) == plain
    blank = results(with_preamble("Sub"))
    assert blank != plain and all(b == blank[0] for b in blank)  # every image is the same
