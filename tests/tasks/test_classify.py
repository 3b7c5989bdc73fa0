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
