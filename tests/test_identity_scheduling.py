"""TrackIdentifier without models: when it embeds, how it votes, calibration, erase.

A scripted worker stands in for the embedder so that the decisions can be checked
exactly: which track gets embedded when, and what ID is reported after each match.
"""

from __future__ import annotations

import numpy as np

from mlsensors.person.embed_worker import EmbedResult
from mlsensors.person.gallery import UNKNOWN, Gallery
from mlsensors.person.gallery_file import GalleryFile
from mlsensors.person.id_stage import FileStore
from mlsensors.person.identify import TrackIdentifier
from mlsensors.person.track import Tracker
from mlsensors.types import Face

IMAGE = np.zeros((480, 640, 3), np.uint8)


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def jitter(v: np.ndarray, seed: int) -> np.ndarray:
    return (v + 0.02 * np.random.default_rng(seed).normal(size=128)).astype(np.float32)


class ScriptedWorker:
    """Returns, for each track, the next vector of its script (synchronously)."""

    def __init__(self, script):
        self.script = script  # track_id or "cal" -> callable(n) -> vector
        self.calls: list = []
        self._done: list = []

    idle = True
    failed = False

    def submit(self, tag, crop):
        kind, key = tag
        who = "cal" if kind == "cal" else key
        n = sum(1 for c in self.calls if c == who)
        self.calls.append(who)
        self._done.append(EmbedResult(tag, self.script[who](n)))

    def poll(self):
        done, self._done = self._done, []
        return done

    def close(self):
        pass


def face(cx, cy=200, size=80.0, facing=True):
    h = size / 2
    return Face((cx - h, cy - h, cx + h, cy + h), 0.9, ((cx, cy),) * 6, facing, 0.9)


def gallery() -> Gallery:
    g = Gallery()
    for i in range(4):
        g.set(i, [vec(i)])
    return g


def run(ident, tracker, frames, t0=0.0, dt=0.1):
    out = []
    for k, faces in enumerate(frames):
        if faces is None:
            ident.skip(tracker.skip())
            out.append(None)
            continue
        upd = tracker.update(faces)
        out.append(ident.update(IMAGE, upd, t0 + k * dt))
    return out


def test_resolves_after_two_agreeing_votes_then_embeds_only_on_refresh():
    w = ScriptedWorker({0: lambda n: jitter(vec(2), n)})
    ident = TrackIdentifier(gallery(), w, refresh_s=3.0, sure_distance=0.0)
    got = run(ident, Tracker(), [[face(100 + k)] for k in range(60)])
    assert got[0][0].id == UNKNOWN and not got[0][0].resolved
    assert got[1][0].id == 2 and got[1][0].resolved and got[1][0].id_confidence > 90
    assert all(g[0].id == 2 for g in got[1:])
    # two to resolve, then one at 3.0 s (frame 31) and none else in 6 s
    assert len(w.calls) == 3


def near(v: np.ndarray, d: float, seed: int) -> np.ndarray:
    """A vector at exactly distance d from v."""
    u = np.random.default_rng(seed).normal(size=128)
    u -= u.dot(v) * v / v.dot(v)
    return (v + d * u / np.linalg.norm(u)).astype(np.float32)


def test_an_unmistakable_first_match_resolves_at_once_a_plausible_one_waits():
    for distance, first_resolved in ((0.30, True), (0.45, False)):
        w = ScriptedWorker({0: lambda n, d=distance: near(vec(2), d, n)})
        got = run(TrackIdentifier(gallery(), w), Tracker(), [[face(100)]] * 3)
        assert got[0][0].resolved is first_resolved
        assert got[-1][0].resolved and got[-1][0].id == 2


def test_one_odd_match_does_not_flip_the_id_but_a_real_change_does():
    seq = [vec(1)] * 3 + [vec(3)] + [vec(1)] * 4 + [vec(3)] * 6
    w = ScriptedWorker({0: lambda n: jitter(seq[min(n, len(seq) - 1)], n)})
    ident = TrackIdentifier(gallery(), w, refresh_s=0.25, sure_distance=0.0)
    got = run(ident, Tracker(), [[face(100)] for _ in range(80)])
    reported = [g[0].id for g in got if g[0].resolved]
    first_change = next(i for i, r in enumerate(reported) if r != 1)
    assert set(reported[:first_change]) == {1}
    assert set(reported[first_change:]) == {3}  # one switch, to the new majority, no flicker
    assert len(w.calls) >= 11


def test_contested_track_is_re_embedded_at_once():
    seq = [vec(1), vec(1), vec(3), vec(1)]
    w = ScriptedWorker({0: lambda n: seq[min(n, 3)]})
    ident = TrackIdentifier(gallery(), w, refresh_s=3.0, sure_distance=0.0)
    got = run(ident, Tracker(), [[face(100)] for _ in range(40)])
    # frame 31: refresh gives the odd vec(3) -> contested -> frame 32 re-embeds, back to 1
    assert len(w.calls) == 4 and all(g[0].id == 1 for g in got[1:])


def test_unknown_person_resolves_to_minus_one_and_is_not_embedded_continuously():
    w = ScriptedWorker({0: lambda n: jitter(vec(50), n)})
    ident = TrackIdentifier(gallery(), w, refresh_s=3.0)
    got = run(ident, Tracker(), [[face(100)] for _ in range(30)])
    assert got[-1][0].resolved and got[-1][0].id == UNKNOWN and got[-1][0].id_confidence == 0
    assert len(w.calls) == 2


def test_large_size_change_triggers_an_embedding():
    w = ScriptedWorker({0: lambda n: vec(0)})
    ident = TrackIdentifier(gallery(), w, refresh_s=100.0, sure_distance=0.0)
    frames = [[face(300, size=80 + 4 * k)] for k in range(20)]
    run(ident, Tracker(), frames)
    assert len(w.calls) == 3  # 2 to resolve, 1 when 80 -> ≥ 112 px


def test_two_tracks_served_in_turn_and_results_join_by_track():
    w = ScriptedWorker({0: lambda n: vec(0), 1: lambda n: vec(1)})
    ident = TrackIdentifier(gallery(), w, sure_distance=0.0)
    got = run(ident, Tracker(), [[face(100), face(400)] for _ in range(6)])
    assert [(g.track_id, g.id) for g in got[-1]] == [(0, 0), (1, 1)]
    assert w.calls[:4] == [0, 1, 0, 1]


def test_ended_track_state_is_dropped():
    w = ScriptedWorker({0: lambda n: vec(0), 1: lambda n: vec(0)})
    ident = TrackIdentifier(gallery(), w)
    tracker = Tracker(max_misses=2)
    run(ident, tracker, [[face(100)]] * 3 + [[]] * 3 + [[face(100)]])
    assert ident._states.keys() == {1}


def test_calibration_learns_the_largest_face_and_persists(tmp_path):
    w = ScriptedWorker({0: lambda n: jitter(vec(60), n), 1: lambda n: vec(61),
                        "cal": lambda n: jitter(vec(60), 100 + n)})
    gf = GalleryFile(tmp_path / "g.bin")
    g = gallery()
    ident = TrackIdentifier(g, w, store=FileStore(gf, g, persist=True))
    tracker = Tracker()
    frames = [[face(100, size=120), face(400, size=60)]] * 3
    before = run(ident, tracker, frames)
    assert before[-1][0].id == UNKNOWN and before[-1][0].resolved
    ident.calibrate(5)
    run(ident, tracker, frames * 6, t0=1.0)
    assert ident.last_calibration.ok and ident.last_calibration.id == 5
    assert 1 <= ident.last_calibration.samples <= 5
    assert len(ident.gallery.embeddings(5)) == ident.last_calibration.samples
    assert gf.load().ids() == [0, 1, 2, 3, 5]
    # the calibrated track itself is re-matched at once against the new gallery
    after = run(ident, tracker, frames, t0=5.0)[-1]
    assert (after[0].track_id, after[0].id, after[1].id) == (0, 5, UNKNOWN)


def test_calibration_discarded_after_two_frames_without_a_face():
    w = ScriptedWorker({0: lambda n: vec(60), "cal": lambda n: vec(70)})
    ident = TrackIdentifier(gallery(), w, calibration_s=10.0)
    tracker = Tracker()
    run(ident, tracker, [[face(100)]])
    ident.calibrate(6)
    run(ident, tracker, [[face(100)], [], None, [face(100)]], t0=1.0)
    assert ident.last_calibration is not None and not ident.last_calibration.ok
    assert 6 not in ident.gallery.ids()


def test_erase_forgets_memory_and_file_at_once(tmp_path):
    w = ScriptedWorker({0: lambda n: vec(2)})
    gf = GalleryFile(tmp_path / "g.bin")
    g = gallery()
    ident = TrackIdentifier(g, w, store=FileStore(gf, g))
    ident.set_persist(True)
    tracker = Tracker()
    assert run(ident, tracker, [[face(100)]] * 3)[-1][0].id == 2
    ident.erase()
    assert len(ident.gallery) == 0 and not gf.path.exists()
    assert run(ident, tracker, [[face(100)]] * 3, t0=1.0)[-1][0].id == UNKNOWN


def test_calibration_gives_up_when_no_embedding_succeeds():
    class FailingWorker(ScriptedWorker):
        def submit(self, tag, crop):
            self.calls.append(tag)
            self._done.append(EmbedResult(tag, None, "face box lies outside"))

    w = FailingWorker({})
    ident = TrackIdentifier(gallery(), w)
    tracker = Tracker()
    ident.calibrate(2)
    got = run(ident, tracker, [[face(100)]] * 60)
    assert ident.last_calibration is not None and not ident.last_calibration.ok
    assert "no embedding" in ident.last_calibration.reason
    assert 2 in ident.gallery.ids() and len(ident.gallery.embeddings(2)) == 1  # untouched
    assert all(g[0].id == UNKNOWN and not g[0].resolved for g in got)


def test_a_face_that_cannot_be_embedded_is_retried_with_back_off():
    class FailingWorker(ScriptedWorker):
        def submit(self, tag, crop):
            self.calls.append(tag)
            self._done.append(EmbedResult(tag, None, "no landmarks"))

    w = FailingWorker({})
    ident = TrackIdentifier(gallery(), w)
    run(ident, Tracker(), [[face(100)]] * 100)  # 10 s at 10 FPS
    assert 4 <= len(w.calls) <= 12


def test_disabled_identifier_embeds_nothing_and_reports_minus_one():
    w = ScriptedWorker({0: lambda n: vec(1)})
    ident = TrackIdentifier(gallery(), w)
    ident.enabled = False
    tracker = Tracker()
    got = run(ident, tracker, [[face(100)]] * 10)
    assert w.calls == [] and all(g[0].id == UNKNOWN for g in got)
    ident.enabled = True
    assert run(ident, tracker, [[face(100)]] * 3, t0=2.0)[-1][0].id == 1
