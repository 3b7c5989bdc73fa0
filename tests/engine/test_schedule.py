"""Scheduling bookkeeping without threads."""

from __future__ import annotations

import itertools
from itertools import islice

import pytest

from axrun.engine.schedule import LagTracker, batches, instance_for, jobs_of


def drive(lag: int, jobs: list[tuple[str, bool]]) -> tuple[list[str], int]:
    """Run the books like a worker: returns the order jobs come back and the filler count."""
    tracker: LagTracker[str] = LagTracker(lag)
    out: list[str] = []
    for name, device in jobs:
        if device:
            tracker.submit(name)
            if (done := tracker.ran()) is not None:
                out.append(done)
        else:
            tracker.skip(name)
        out.extend(tracker.ready_skipped())
    fillers = 0
    while tracker.in_flight:
        tracker.filler()
        fillers += 1
        if (done := tracker.ran()) is not None:
            out.append(done)
        out.extend(tracker.ready_skipped())
    return out, fillers


def test_no_lag_returns_each_job_at_once() -> None:
    assert drive(0, [("a", True), ("b", True)]) == (["a", "b"], 0)


def test_double_buffer_drops_two_and_drains_with_two_fillers() -> None:
    tracker: LagTracker[str] = LagTracker(2)
    tracker.submit("a")
    assert tracker.ran() is None  # 1st call: nothing useful
    tracker.submit("b")
    assert tracker.ran() is None  # 2nd call: nothing useful
    tracker.submit("c")
    assert tracker.ran() == "a"  # 3rd call returns the 1st input
    assert drive(2, [(x, True) for x in "abcde"]) == (list("abcde"), 2)
    assert drive(2, [("a", True)]) == (["a"], 2)


def test_skipped_jobs_keep_their_place() -> None:
    jobs = [("a", True), ("b", False), ("c", True), ("d", False), ("e", False), ("f", True)]
    assert drive(2, jobs)[0] == list("abcdef")
    assert drive(0, jobs)[0] == list("abcdef")
    assert drive(2, [("x", False)]) == (["x"], 0)


def test_batches_and_round_robin() -> None:
    assert list(batches(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches([], 2)) == []
    assert [instance_for(j, 3) for j in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert [instance_for(j, 3, group=2) for j in range(8)] == [0, 0, 1, 1, 2, 2, 0, 0]
    for k in range(3):  # each instance's jobs, in order, are the ones assigned to it
        mine = list(islice(jobs_of(k, 3, group=2), 4))
        assert mine == [j for j in range(24) if instance_for(j, 3, group=2) == k][:4]


def test_batches_keep_what_was_read_before_a_failure_and_close_their_source() -> None:
    def failing():
        yield from range(5)
        raise OSError("gone")

    it = batches(failing(), 2)
    assert [next(it), next(it), next(it)] == [[0, 1], [2, 3], [4]]
    with pytest.raises(OSError, match="gone"):
        next(it)

    closed = []

    def endless():
        try:
            yield from itertools.count()
        finally:
            closed.append(True)

    it = batches(endless(), 3)
    assert next(it) == [0, 1, 2]
    it.close()
    assert closed == [True]
