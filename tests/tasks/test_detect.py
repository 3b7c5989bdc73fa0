"""Detection decoders, NMS, class filters and postamble matching."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from axrun.errors import ModelError, ParameterError
from axrun.modelfolder import TensorSpec
from axrun.tasks import class_ids
from axrun.tasks.detect import (
    DetectOptions,
    decode_dfl,
    decode_ultralytics,
    decode_yolox,
    detect_format,
    grid_points,
    nms,
    select,
)
from axrun.tasks.postamble import match_postamble_inputs


def test_yolox_decode_places_a_box_in_its_cell() -> None:
    hw = (64, 64)
    grid, _ = grid_points(hw, (8, 16, 32))
    pred = np.zeros((len(grid), 5 + 3), np.float32)
    # anchor of stride-16 level at column 2, row 1: index 64 + 1*4 + 2
    a = 64 + 4 + 2
    pred[a, :4] = [0.5, 0.25, np.log(2.0), np.log(1.0)]
    pred[a, 4], pred[a, 5 + 1] = 0.9, 0.8
    boxes, scores = decode_yolox(pred, hw)
    cx, cy = (2 + 0.5) * 16, (1 + 0.25) * 16
    np.testing.assert_allclose(boxes[a], [cx - 16, cy - 8, cx + 16, cy + 8], atol=1e-4)
    assert scores[a, 1] == pytest.approx(0.72) and scores[a, 0] == 0
    with pytest.raises(ModelError, match="anchors"):
        decode_yolox(pred[:-1], hw)


def test_ultralytics_decode_reads_centre_size() -> None:
    pred = np.zeros((4 + 2, 3), np.float32)
    pred[:4, 1] = [50, 40, 20, 10]
    pred[5, 1] = 0.7
    boxes, scores = decode_ultralytics(pred)
    np.testing.assert_allclose(boxes[1], [40, 35, 60, 45])
    assert scores.shape == (3, 2) and scores[1, 1] == pytest.approx(0.7)


def dfl_postamble(levels: list[tuple[int, int]], classes: int, reg_max: int = 16) -> \
        onnx.ModelProto:
    """The Ultralytics export's head tail as ONNX: DFL softmax-expectation, dist2bbox,
    sigmoid, concat → [1, 4 + C, anchors] with boxes as cx, cy, w, h in input pixels."""
    nodes, inits, inputs, box_parts, cls_parts = [], [], [], [], []
    inits.append(numpy_helper.from_array(np.arange(reg_max, dtype=np.float32)
                                         .reshape(1, 1, reg_max, 1), "proj"))
    for i, ((h, w), s) in enumerate(zip(levels, (8, 16, 32), strict=False)):
        b, c = f"box{i}", f"cls{i}"
        inputs += [helper.make_tensor_value_info(b, TensorProto.FLOAT, [1, 4 * reg_max, h, w]),
                   helper.make_tensor_value_info(c, TensorProto.FLOAT, [1, classes, h, w])]
        ys, xs = np.mgrid[0:h, 0:w]
        anchors = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5]).astype(np.float32)[None]
        inits += [
            numpy_helper.from_array(np.array([1, 4, reg_max, h * w], np.int64), f"s{i}"),
            numpy_helper.from_array(np.array([1, classes, h * w], np.int64), f"cs{i}"),
            numpy_helper.from_array(anchors, f"anc{i}"),
            numpy_helper.from_array(np.array(s, np.float32), f"stride{i}"),
            numpy_helper.from_array(np.array(2, np.float32), f"two{i}"),
        ]
        nodes += [
            helper.make_node("Reshape", [b, f"s{i}"], [f"r{i}"]),
            helper.make_node("Softmax", [f"r{i}"], [f"sm{i}"], axis=2),
            helper.make_node("Mul", [f"sm{i}", "proj"], [f"m{i}"]),
            helper.make_node("ReduceSum", [f"m{i}", "axes2"], [f"d{i}"], keepdims=0),
            helper.make_node("Split", [f"d{i}", "split2"], [f"lt{i}", f"rb{i}"], axis=1),
            helper.make_node("Sub", [f"anc{i}", f"lt{i}"], [f"x1y1{i}"]),
            helper.make_node("Add", [f"anc{i}", f"rb{i}"], [f"x2y2{i}"]),
            helper.make_node("Add", [f"x1y1{i}", f"x2y2{i}"], [f"sum{i}"]),
            helper.make_node("Div", [f"sum{i}", f"two{i}"], [f"cxy{i}"]),
            helper.make_node("Sub", [f"x2y2{i}", f"x1y1{i}"], [f"wh{i}"]),
            helper.make_node("Concat", [f"cxy{i}", f"wh{i}"], [f"xywh{i}"], axis=1),
            helper.make_node("Mul", [f"xywh{i}", f"stride{i}"], [f"bx{i}"]),
            helper.make_node("Reshape", [c, f"cs{i}"], [f"cr{i}"]),
            helper.make_node("Sigmoid", [f"cr{i}"], [f"cp{i}"]),
        ]
        box_parts.append(f"bx{i}")
        cls_parts.append(f"cp{i}")
    inits += [numpy_helper.from_array(np.array([2], np.int64), "axes2"),
              numpy_helper.from_array(np.array([2, 2], np.int64), "split2")]
    nodes += [helper.make_node("Concat", box_parts, ["boxes"], axis=2),
              helper.make_node("Concat", cls_parts, ["scores"], axis=2),
              helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1)]
    total = sum(h * w for h, w in levels)
    graph = helper.make_graph(nodes, "dfl", inputs, [
        helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, total])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_numpy_dfl_decode_equals_the_postamble_path() -> None:
    rng = np.random.default_rng(0)
    hw, classes = (64, 96), 5
    levels = [(hw[0] // s, hw[1] // s) for s in (8, 16, 32)]
    boxes_in = [rng.normal(0, 2, (64, h, w)).astype(np.float32) for h, w in levels]
    cls_in = [rng.normal(-2, 2, (classes, h, w)).astype(np.float32) for h, w in levels]
    sess = ort.InferenceSession(dfl_postamble(levels, classes).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    feed = {}
    for i in range(3):
        feed[f"box{i}"], feed[f"cls{i}"] = boxes_in[i][None], cls_in[i][None]
    (pred,) = sess.run(None, feed)
    ref_boxes, ref_scores = decode_ultralytics(pred[0])
    boxes, scores = decode_dfl(boxes_in, cls_in, hw)
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-3)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    opts = DetectOptions(conf=0.5)
    a, b = select(boxes, scores, opts), select(ref_boxes, ref_scores, opts)
    assert len(a) > 0 and np.array_equal(a.class_id, b.class_id)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    # decoding only the cells that can score above conf gives the same detections
    few_boxes, few_scores = decode_dfl(boxes_in, cls_in, hw, conf=0.5)
    assert 0 < len(few_boxes) < len(boxes)
    c = select(few_boxes, few_scores, opts)
    assert np.array_equal(c.class_id, a.class_id) and np.array_equal(c.xyxy, a.xyxy)
    np.testing.assert_array_equal(c.confidence, a.confidence)


def test_nms_class_aware_agnostic_and_max_det() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]],
                     np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    cls = np.array([0, 0, 1, 0])
    assert list(nms(boxes, scores, cls, 0.5, agnostic=False, max_det=10)) == [0, 2, 3]
    assert list(nms(boxes, scores, cls, 0.5, agnostic=True, max_det=10)) == [0, 3]
    assert list(nms(boxes, scores, cls, 0.5, agnostic=False, max_det=2)) == [0, 2]
    assert list(nms(boxes, scores, cls, 0.95, agnostic=True, max_det=10)) == [0, 1, 3]


def test_select_applies_confidence_and_class_filter() -> None:
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32)
    scores = np.array([[0.9, 0.1], [0.2, 0.3], [0.1, 0.6]], np.float32)
    assert list(select(boxes, scores, DetectOptions(conf=0.25)).class_id) == [0, 1, 1]
    assert len(select(boxes, scores, DetectOptions(conf=0.5))) == 2
    only = select(boxes, scores, DetectOptions(conf=0.25, classes=frozenset({1})))
    assert list(only.class_id) == [1, 1]


def test_classes_by_name_and_id() -> None:
    labels = ("person", "bicycle", "car")
    assert class_ids(["person", "car"], labels) == {0, 2}
    assert class_ids(["1", " Car", 0], labels) == {0, 1, 2}
    assert class_ids(None, labels) is None
    with pytest.raises(ParameterError, match="classes has an unknown class 'truck'"):
        class_ids(["truck"], labels)


def spec(name: str, n: int, h: int, w: int, c: int) -> TensorSpec:
    return TensorSpec(name, (n, h, w, c + 3), ((0, 0), (0, 0), (0, 0), (0, 3)), 0.1, 0)


def test_postamble_inputs_match_by_name_then_shape_and_refuse_ambiguity() -> None:
    outs = [spec("a", 1, 8, 8, 4), spec("b", 1, 4, 4, 4), spec("c", 1, 4, 4, 80)]
    assert match_postamble_inputs(["c", "a", "b"], [[1, 80, 4, 4], [1, 4, 8, 8],
                                                    [1, 4, 4, 4]], outs) == [2, 0, 1]
    # names differ: by shape (head order not guaranteed, pitfall 3)
    assert match_postamble_inputs(["x", "y"], [[1, 80, 4, 4], [1, 4, 8, 8]], outs) == [2, 0]
    with pytest.raises(ModelError, match="could be fed by several"):
        match_postamble_inputs(["x"], [[1, 4, "h", "w"]], outs)
    with pytest.raises(ModelError, match="no device output has that name or shape"):
        match_postamble_inputs(["x"], [[1, 7, 4, 4]], outs)


@pytest.mark.parametrize(("shape", "classes", "expected"), [
    ([1, 84, 8400], 80, "ultralytics"), ([1, 84, 8400], None, "ultralytics"),
    ([1, 8400, 85], 80, "yolox"), ([1, 8400, 84], 80, "ultralytics-transposed"),
    ([1, 25200, 85], 80, "yolox"),  # a YOLOv5 export: 3 anchors per cell
    # a 64x64 input has 84 cells: the anchor axis is the one holding them
    ([1, 84, 85], 80, "cells=84:yolox"),
])
def test_the_layout_comes_from_the_anchor_axis_and_the_classes(shape, classes,
                                                               expected) -> None:
    cells = 8400
    if expected.startswith("cells="):
        cells, expected = int(expected[6:].split(":")[0]), expected.split(":")[1]
    assert detect_format(shape, classes, cells=cells) == expected


@pytest.mark.parametrize(("shape", "classes", "cells", "message"), [
    # once read as Ultralytics because 21 < 85: boxes from the wrong axis, no error
    ([1, 21, 85], None, 21, "YOLOX .* or Ultralytics transposed"),
    ([1, 84, 84], 80, 84, "fits both ultralytics and ultralytics-transposed"),
    ([1, 0, 85], None, 8400, "cannot tell the anchors"),  # a dynamic anchor axis
    ([1, 8400, 85], 82, 8400, "fits no known layout for the model's 82 classes"),
    ([1, 85, 8400, 1], None, 8400, r"is not \[N, a, b\]"),
])
def test_a_layout_that_cannot_be_told_is_an_error(shape, classes, cells, message) -> None:
    with pytest.raises(ModelError, match=message):
        detect_format(shape, classes, cells=cells)


def test_boxes_without_area_overlap_nothing() -> None:
    # OpenCV's NMS counts two boxes whose areas sum to zero as overlapping fully: a
    # zero-width or inverted box would suppress an unrelated one (a hostile review)
    boxes = np.array([[0, 0, 0, 10], [200, 200, 200, 210], [0, 0, 10, 10],
                      [300, 300, 280, 310]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    cls = np.zeros(4, np.int64)
    for agnostic in (False, True):
        assert list(nms(boxes, scores, cls, 0.45, agnostic, 10)) == [0, 1, 2, 3]
    assert list(nms(boxes, scores, cls, 0.45, False, 2)) == [0, 1]
