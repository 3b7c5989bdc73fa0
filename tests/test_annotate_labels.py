"""Box tags: whole, inside the image, clear of each other and of better boxes' outlines."""

from __future__ import annotations

import numpy as np
import pytest

from axrun.annotate import BoxAnnotator, Tag, class_color, place_labels
from axrun.results import Detections

W, H = 400, 300
GRAY = 90


def dets(boxes: list[list[float]], scores: list[float], classes: list[int] | None = None,
         labels: tuple[str, ...] | None = None) -> Detections:
    n = len(boxes)
    return Detections(np.array(boxes, np.float32).reshape(n, 4), np.array(scores, np.float32),
                      np.array(classes or [0] * n, np.int64), labels or ("person",) * n)


def blank(w: int = W, h: int = H) -> np.ndarray:
    return np.full((h, w, 3), GRAY, np.uint8)


def inside(tag: Tag, w: int = W, h: int = H) -> bool:
    return tag.x >= 0 and tag.y >= 0 and tag.x + tag.width <= w and tag.y + tag.height <= h


def crop(image: np.ndarray, tag: Tag) -> np.ndarray:
    return image[tag.y: tag.y + tag.height, tag.x: tag.x + tag.width]


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Pixels two (x0, y0, x1, y1) half-open rectangles share."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def rect(tag: Tag) -> tuple[int, int, int, int]:
    return tag.x, tag.y, tag.x + tag.width, tag.y + tag.height


def overlapping_pairs(rects: list[tuple[int, int, int, int]]) -> int:
    return sum(overlap(a, b) > 0 for i, a in enumerate(rects) for b in rects[i + 1:])


@pytest.mark.parametrize("box", [
    [330, 100, 400, 200],  # right edge
    [385, 100, 400, 200],  # right edge, box narrower than its tag
    [0, 100, 50, 200],     # left edge
    [150, 0, 250, 80],     # top edge
    [320, 240, 400, 300],  # bottom-right corner
    [0, 0, 400, 300],      # the whole image
], ids=["right", "right-narrow", "left", "top", "bottom-right", "whole"])
def test_a_tag_at_an_edge_is_shown_whole(box: list[float]) -> None:
    annotator = BoxAnnotator()
    edge = dets([box], [0.61])
    (tag,) = annotator.tags(edge, (W, H))
    assert inside(tag)
    # The same tag drawn for a box in the middle: every pixel of it is there at the edge.
    middle = dets([[150, 120, 250, 220]], [0.61])
    (reference,) = annotator.tags(middle, (W, H))
    assert (tag.text, tag.width, tag.height) == ("person 0.61", reference.width,
                                                  reference.height)
    np.testing.assert_array_equal(crop(annotator.annotate(blank(), edge), tag),
                                  crop(annotator.annotate(blank(), middle), reference))


def test_a_free_box_gets_its_tag_above_its_top_left_corner_else_inside() -> None:
    (x, y), = place_labels(np.array([[100, 100, 200, 200]], np.float32), np.array([0.5]),
                           [(60, 15)], (W, H))
    assert (x, y) == (100, 85)
    (x, y), = place_labels(np.array([[100, 0, 200, 200]], np.float32), np.array([0.5]),
                           [(60, 15)], (W, H))
    assert (x, y) == (100, 0)


def test_side_by_side_boxes_at_the_top_edge_get_tags_that_do_not_cover_each_other() -> None:
    both = dets([[100, 0, 140, 100], [142, 0, 200, 100]], [0.59, 0.28], [15, 16],
                ("cat", "dog"))
    cat, dog = BoxAnnotator().tags(both, (W, H))
    assert overlap(rect(cat), rect(dog)) == 0 and inside(cat) and inside(dog)
    # Where both would go alone (at their top-left corners), they would collide.
    alone = [BoxAnnotator().tags(dets([b], [s]), (W, H))[0]
             for b, s in ([[100, 0, 140, 100], 0.59], [[142, 0, 200, 100], 0.28])]
    assert overlap(rect(alone[0]), rect(alone[1])) > 0
    # Both read in full: the cat's tag (the better score) did not move.
    image = BoxAnnotator().annotate(blank(), both)
    np.testing.assert_array_equal(
        crop(image, cat), crop(BoxAnnotator().annotate(blank(), dets(
            [[100, 0, 140, 100]], [0.59], [15], ("cat",))), cat))
    assert (cat.x, cat.y) == (100, 0)


def test_a_tag_keeps_off_a_better_box_outline_when_there_is_room() -> None:
    better, worse = [100, 50, 300, 280], [80, 100, 250, 250]
    two = dets([better, worse], [0.9, 0.5], [2, 0], ("car", "person"))
    annotator = BoxAnnotator(line_width=3)
    _, tag = annotator.tags(two, (W, H))
    # At its top-left corner the tag would cross the car's left edge (x 100..102).
    assert tag.x + tag.width > 100 and inside(tag)
    x1, y1, x2, y2 = better
    edges = [(x1, y1, x2, y1 + 3), (x1, y2 - 3, x2, y2), (x1, y1, x1 + 3, y2),
             (x2 - 3, y1, x2, y2)]
    assert all(overlap(rect(tag), e) == 0 for e in edges)
    # In the picture: the car's outline is whole, in the car's colour.
    image = annotator.annotate(blank(), two)
    for ex0, ey0, ex1, ey1 in edges:
        assert (image[ey0:ey1, ex0:ex1] == class_color(2)).all()


def crowd(n: int = 30, seed: int = 3) -> Detections:
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0, W - 40, n)
    y1 = rng.uniform(0, H * 0.4, n)
    bw = rng.uniform(30, 80, n)
    boxes = np.stack([x1, y1, np.minimum(x1 + bw, W), np.minimum(y1 + bw * 2.5, H)], 1)
    return dets(boxes.tolist(), rng.uniform(0.25, 0.95, n).tolist())


def test_a_crowd_of_people_gets_whole_tags_that_rarely_cover_each_other() -> None:
    people = crowd()
    annotator = BoxAnnotator()
    tags = annotator.tags(people, (W, H))
    assert len(tags) == 30 and all(inside(t) for t in tags)
    # The previous placement: above the top-left corner, else inside it, never moved.
    old = []
    for box, t in zip(people.xyxy, tags, strict=True):
        x, y = round(float(box[0])), round(float(box[1]))
        y = y - t.height if y - t.height >= 0 else y
        old.append((x, y, x + t.width, y + t.height))
    before, after = overlapping_pairs(old), overlapping_pairs([rect(t) for t in tags])
    assert before >= 15 and after <= before // 5, (before, after)
    assert annotator.annotate(blank(), people).shape == (H, W, 3)


def test_boxes_only_draws_no_text() -> None:
    boxes = [[50, 40, 150, 160], [200, 0, 400, 120], [10, 200, 390, 300]]
    image = BoxAnnotator(show_labels=False, line_width=2).annotate(
        blank(), dets(boxes, [0.9, 0.5, 0.3]))
    outline = np.zeros((H, W), bool)
    for x1, y1, x2, y2 in boxes:
        outline[y1:y2, x1:x2] = True
        outline[y1 + 2: y2 - 2, x1 + 2: x2 - 2] = False
    changed = (image != GRAY).any(axis=2)
    assert changed.any() and not (changed & ~outline).any()
    assert BoxAnnotator(show_labels=False).tags(dets(boxes, [0.9, 0.5, 0.3]), (W, H)) == []


def test_no_score_makes_a_narrower_tag() -> None:
    one = dets([[150, 120, 250, 220]], [0.61])
    (full,), (name,) = (BoxAnnotator(show_conf=c).tags(one, (W, H)) for c in (True, False))
    assert (full.text, name.text) == ("person 0.61", "person") and name.width < full.width
    drawn = [(BoxAnnotator(show_conf=c).annotate(blank(), one) != GRAY).any(axis=2)[:120]
             for c in (True, False)]
    columns = [np.flatnonzero(d.any(axis=0)) for d in drawn]  # the tag, above the box
    assert columns[1][-1] - columns[1][0] < columns[0][-1] - columns[0][0]


@pytest.mark.parametrize(("line_width", "expected"), [(5, 5), (None, 1)])
def test_line_width_is_the_outlines_width_in_pixels(line_width: int | None,
                                                    expected: int) -> None:
    image = BoxAnnotator(line_width=line_width, show_labels=False).annotate(
        blank(), dets([[50, 50, 150, 150]], [0.8]))
    for line in (image[100], image[:, 100]):  # a row and a column through the box
        changed = (line != GRAY).any(axis=1)
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, changed.astype(int), 0])))[::2]
        assert runs.tolist() == [expected, expected]
        assert (line[changed] == class_color(0)).all()


def test_a_tiny_image_is_drawn_without_going_outside() -> None:
    tiny = blank(20, 15)
    one = dets([[2, 2, 18, 14]], [0.5])
    out = BoxAnnotator().annotate(tiny, one)
    assert out.shape == tiny.shape and out.dtype == np.uint8 and (out != GRAY).any()
    (tag,) = BoxAnnotator().tags(one, (20, 15))
    assert (tag.x, tag.y) == (0, 0) and tag.width > 20  # wider than the image: clipped
    assert BoxAnnotator().annotate(blank(1, 1), dets([[0, 0, 1, 1]], [0.5])).shape == (1, 1, 3)


def test_no_boxes_and_no_labels() -> None:
    np.testing.assert_array_equal(BoxAnnotator().annotate(blank(), Detections.empty()),
                                  blank())
    unnamed = Detections(np.array([[10, 20, 60, 90]], np.float32),
                         np.array([0.7], np.float32), np.array([3]))
    assert [t.text for t in BoxAnnotator().tags(unnamed, (W, H))] == ["3 0.70"]


def test_line_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="line_width"):
        BoxAnnotator(line_width=0)
