"""Tracker: stable ids across frames, missed frames, crossing paths (pure, no models)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mlsensors.person.track import Tracker, iou
from mlsensors.types import Face


def face(cx: float, cy: float, size: float = 60.0) -> Face:
    h = size / 2
    return Face((cx - h, cy - h, cx + h, cy + h), 0.9, ((cx, cy),) * 6, True, 0.9)


def test_iou_basics():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 15, 10)) - 1 / 3) < 1e-9


def test_same_face_keeps_its_id_and_new_faces_get_new_ids():
    tr = Tracker()
    first = tr.update([face(100, 100)]).faces[0]
    assert first.new and first.age == 1
    for step in range(1, 10):
        got = tr.update([face(100 + 8 * step, 100)]).faces
        assert [t.track_id for t in got] == [first.track_id]
        assert not got[0].new and got[0].age == step + 1
    both = tr.update([face(400, 300), face(180, 100)]).faces
    assert both[1].track_id == first.track_id
    assert both[0].track_id != first.track_id and both[0].new


def test_survives_two_missed_frames_but_not_three():
    tr = Tracker(max_misses=2)
    tid = tr.update([face(100, 100)]).faces[0].track_id
    assert tr.update([]).ended == ()
    assert tr.skip().ended == ()
    assert tr.update([face(110, 100)]).faces[0].track_id == tid
    tr.update([])
    tr.update([])
    assert tr.update([]).ended == (tid,)
    assert tr.update([face(110, 100)]).faces[0].track_id != tid


def test_two_faces_crossing_keep_their_tracks():
    """A moves right, B moves left along the same line; they overlap mid-way."""
    tr = Tracker()
    ids = None
    for step in range(25):
        a = face(100 + 20 * step, 200)
        b = face(580 - 20 * step, 205)
        order = [b, a] if step % 2 else [a, b]
        got = tr.update(order).faces
        by_face = {id(t.face): t.track_id for t in got}
        a_id, b_id = by_face[id(a)], by_face[id(b)]
        if ids is None:
            ids = (a_id, b_id)
        assert (a_id, b_id) == ids, f"swap at step {step}"


def test_far_jump_or_big_size_change_starts_a_new_track():
    tr = Tracker()
    tid = tr.update([face(100, 100)]).faces[0].track_id
    assert tr.update([face(600, 400)]).faces[0].track_id != tid
    tr2 = Tracker()
    tid2 = tr2.update([face(100, 100, 40)]).faces[0].track_id
    assert tr2.update([face(100, 100, 120)]).faces[0].track_id != tid2


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7), st.integers(0, 5)), min_size=1, max_size=4,
             unique_by=lambda c: c[0]),
    st.lists(st.tuples(st.integers(-6, 6), st.integers(-6, 6)), min_size=30, max_size=30),
    st.sets(st.integers(0, 29), max_size=6),
)
def test_separated_moving_faces_keep_their_ids_through_drops(cells, moves, dropped):
    """Faces on a 8×6 grid of 100 px cells, jittering ±6 px a frame, some frames lost."""
    dropped = {d for d in dropped if d + 1 not in dropped or d + 2 not in dropped}
    tr = Tracker()
    ids = None
    for k, (dx, dy) in enumerate(moves):
        if k in dropped and k > 0:
            tr.skip()
            continue
        faces = [face(50 + 100 * cx + dx, 50 + 100 * cy + dy, 60) for cx, cy in cells]
        got = tr.update(faces).faces
        now = [t.track_id for t in got]
        if ids is None:
            ids = now
        assert now == ids
