"""Identities for tracks: when to embed, how to vote, calibrate and erase.

Per frame the sensor hands over the frame and the tracker's update; this module
- joins finished embeddings to their track (by track id; results for tracks that have
  ended are dropped),
- decides what to embed next, one job at a time, in this order: a calibration sample;
  a track that is new, unresolved or contested (its latest match disagrees with its ID);
  a track whose face changed a lot since its last embedding (size × 1.4, or it turned
  to face the camera); a track whose last embedding is `refresh_s` old. Nothing else is
  embedded: a resolved face that stays put costs one embedding every `refresh_s`;
- votes: each track keeps its last `window` matches; an ID (or "unknown") is adopted
  once it has `min_votes` votes and a strict majority — or at once, if the very first
  match is closer than `sure_distance` — and replaced only when another ID gets at least
  `min_votes` and more votes than it. One odd match among lemons is outvoted, never
  reported.

Worst-case latency from a face appearing to its ID being reported: for k faces
appearing together, (2k + 1) × T + one frame — `min_votes` (2) embeddings each, served
in turn, plus one the worker may be finishing — with T the embedding time (~80 ms alone,
~120 ms while a flat-out detection loop shares the 2 cores): ≤ 0.4 s for one face,
≤ 1.1 s for four. A sure first match halves it. Measured figures are in
docs/identification.md (bench/identity_bench.py).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

import numpy as np

from mlsensors.errors import StateError
from mlsensors.person.gallery import UNKNOWN, Gallery, Match
from mlsensors.person.track import TrackedFace, TrackUpdate
from mlsensors.vision.embed import crop_around

REFRESH_S = 3.0
VOTE_WINDOW = 5
MIN_VOTES = 2
SURE_DISTANCE = 0.40
"""A first match this close resolves a track alone. No two different people of ORL's 19,000
pairs came closer than 0.47 (1st percentile 0.56); half of the same-person pairs do (median
0.31), so about half of the faces get their ID after one embedding instead of two."""
CHANGE_SCALE = 1.4
CALIBRATION_S = 1.5
CALIBRATION_SAMPLES = 5
CALIBRATION_MAX_MISSES = 2
CALIBRATION_GIVE_UP_S = 3.0
"""Seconds past the calibration window to wait for a first sample before giving up."""


@dataclass(frozen=True, slots=True)
class TrackIdentity:
    """What the identifier says about one tracked face in this frame."""

    track_id: int
    id: int
    """Gallery ID, or −1 while unknown or not yet resolved."""
    id_confidence: int
    """0–100: mean match confidence of the winning votes × their share of the window."""
    resolved: bool
    votes: int


class Failure(IntEnum):
    """Why a calibration learnt nothing: a closed set, so that it can cross the seal."""

    NONE = 0
    NO_FACE = 1
    NO_EMBEDDING = 2
    SWITCHED_OFF = 3


FAILURE_TEXT = {
    Failure.NO_FACE: "no face for two frames; discarded",
    Failure.NO_EMBEDDING: "no embedding could be made of the face; discarded",
    Failure.SWITCHED_OFF: "identification was switched off (ENABLE_ID=0); discarded",
}


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    id: int
    ok: bool
    samples: int
    failure: Failure = Failure.NONE

    @property
    def reason(self) -> str:
        return FAILURE_TEXT.get(self.failure, "")


Apply = Callable[[int, Sequence[np.ndarray]], None]


class IdStore(Protocol):
    """Where learnt IDs are kept beyond the identifier's memory, and who decides.

    In one process (`id_stage.FileStore`) a calibration is applied at once and saved to
    the gallery file; in the sealed sensing process (`gallery_link.GuardStore`) it is
    sent to the guard, which keeps the file, and comes back through
    `TrackIdentifier.load` only once the guard has accepted it.
    """

    problem: str
    """What went wrong keeping the IDs ("" when nothing), for the sensor's status."""

    def learnt(self, id_: int, samples: Sequence[np.ndarray], apply: Apply) -> None:
        """A calibration made `samples` of `id_`; `apply(id_, samples)` makes them the
        ID's in this identifier (call it, or leave it to a later `load`)."""

    def failed(self, result: CalibrationResult) -> None:
        """A calibration learnt nothing."""

    def erased(self) -> None:
        """ERASE_IDS: the identifier's memory is cleared; clear what is kept elsewhere."""

    def persist(self, on: bool, gallery: Gallery) -> None:
        """PERSIST_IDS: keep IDs across restarts from now on (on) or not."""


class MemoryStore:
    """IDs in memory only: calibrations apply at once, nothing is written."""

    problem = ""

    def learnt(self, id_: int, samples: Sequence[np.ndarray], apply: Apply) -> None:
        apply(id_, samples)

    def failed(self, result: CalibrationResult) -> None:
        pass

    def erased(self) -> None:
        pass

    def persist(self, on: bool, gallery: Gallery) -> None:
        pass


@dataclass(slots=True)
class _TrackState:
    vectors: deque = field(default_factory=lambda: deque(maxlen=VOTE_WINDOW))
    matches: deque = field(default_factory=lambda: deque(maxlen=VOTE_WINDOW))
    pending: bool = False
    failures: int = 0
    embeds: int = 0
    last_time: float = -1e18
    last_size: float = 0.0
    last_facing: bool = False
    id: int = UNKNOWN
    confidence: int = 0
    resolved: bool = False
    contested: bool = False


@dataclass(slots=True)
class _Calibration:
    id: int
    started: float
    track_id: int | None = None
    samples: list = field(default_factory=list)
    misses: int = 0
    pending: bool = False


def _face_size(t: TrackedFace) -> float:
    b = t.face.box
    return float(np.sqrt(max(b[2] - b[0], 1.0) * max(b[3] - b[1], 1.0)))


class TrackIdentifier:
    """Gives tracks gallery IDs without slowing the detection loop.

    `update(image, tracks, now)` once per processed frame (after `Tracker.update`), and
    `skip(tracks)` for a frame without a picture. `calibrate(id)`, `erase()`, `load()`
    may be called from any thread. `worker` is a ProcessWorker (sensor) or InlineWorker;
    `store` keeps what calibration learns (default: memory only).
    """

    def __init__(
        self,
        gallery: Gallery,
        worker,
        *,
        store: IdStore | None = None,
        refresh_s: float = REFRESH_S,
        window: int = VOTE_WINDOW,
        min_votes: int = MIN_VOTES,
        sure_distance: float = SURE_DISTANCE,
        change_scale: float = CHANGE_SCALE,
        calibration_s: float = CALIBRATION_S,
    ) -> None:
        self.gallery = gallery
        self.worker = worker
        self.store = store if store is not None else MemoryStore()
        self.refresh_s = refresh_s
        self.window = window
        self.min_votes = min_votes
        self.sure_distance = sure_distance
        self.change_scale = change_scale
        self.calibration_s = calibration_s
        self._states: dict[int, _TrackState] = {}
        self._calibration: _Calibration | None = None
        self._requests: list = []
        self.enabled = True
        """False: tracks are followed but nothing is embedded and every ID is −1."""
        self.last_calibration: CalibrationResult | None = None
        self._lock = threading.RLock()

    # -- commands (any thread) -------------------------------------------------------

    def calibrate(self, id_: int) -> None:
        """Learn the largest face of the next ~1.5 s as `id_` (replacing what it held).
        StateError while identification is off: nothing would be learnt."""
        self.gallery.check_id(id_)
        with self._lock:
            if not self.enabled:
                raise StateError("identification is off (ENABLE_ID=0): nothing would be "
                                 "learnt")
            self._requests.append(("calibrate", id_))

    def erase(self) -> None:
        """Forget every ID now, in memory and wherever the store keeps them."""
        with self._lock:
            self.gallery.clear()
            self._calibration = None
            self._requests.clear()
            for st in self._states.values():
                for v in st.vectors:
                    v.fill(0.0)
            self._states = {tid: self._new_state() for tid in self._states}
            self.store.erased()

    def set_enabled(self, on: bool) -> None:
        """ENABLE_ID; switching off ends a calibration in progress (it would learn
        nothing while off)."""
        with self._lock:
            self.enabled = bool(on)
            if on:
                return
            requested = [arg for kind, arg in self._requests if kind == "calibrate"]
            self._requests.clear()
            if requested and self._calibration is None:
                self._calibration = _Calibration(requested[-1], 0.0)
            if self._calibration is not None:
                self._fail_calibration(Failure.SWITCHED_OFF)

    def set_persist(self, on: bool) -> None:
        with self._lock:
            self.store.persist(on, self.gallery)

    def load(self, id_: int, samples: Sequence[np.ndarray]) -> None:
        """Make `samples` the whole of `id_` (none: forget it), as the keeper of the
        gallery says; tracks in view are re-matched at once."""
        with self._lock:
            if len(samples):
                self.gallery.set(id_, samples)
            else:
                self.gallery.remove(id_)
            self._rematch()

    def _apply(self, id_: int, samples: Sequence[np.ndarray]) -> None:
        self.gallery.set(id_, samples)
        self._rematch()

    # -- per frame ---------------------------------------------------------------------

    def skip(self, tracks: TrackUpdate) -> None:
        """A frame without a picture: drop ended tracks; calibration counts a miss."""
        with self._lock:
            self._collect()
            self._forget(tracks.ended)
            if self._calibration is not None:
                self._calibration_miss()

    def update(self, image: np.ndarray, tracks: TrackUpdate, now: float) -> list[TrackIdentity]:
        """Identities for `tracks.faces`, in their order. Never blocks on an embedding."""
        with self._lock:
            self._forget(tracks.ended)
            if not self.enabled or self.worker.failed:
                # Off, or nothing can be embedded any more: no ID is reported from
                # matches that can no longer be refreshed or contested.
                self._collect()
                return [TrackIdentity(t.track_id, UNKNOWN, 0, False, 0) for t in tracks.faces]
            for kind, arg in self._requests:
                if kind == "calibrate":
                    self._calibration = _Calibration(arg, now)
            self._requests.clear()
            for t in tracks.faces:
                if t.track_id not in self._states:
                    self._states[t.track_id] = self._new_state()
            self._collect()
            self._step_calibration(tracks, now)
            self._schedule(image, tracks, now)
            self._collect()
            return [self._identity(t.track_id) for t in tracks.faces]

    def _identity(self, tid: int) -> TrackIdentity:
        st = self._states[tid]
        return TrackIdentity(tid, st.id, st.confidence, st.resolved, len(st.matches))

    def _forget(self, ended) -> None:
        for tid in ended:
            st = self._states.pop(tid, None)
            if st is not None:
                for v in st.vectors:
                    v.fill(0.0)

    # -- embedding results -------------------------------------------------------------

    def _collect(self) -> None:
        for res in self.worker.poll():
            kind, key = res.tag
            if kind == "cal":
                cal = self._calibration
                if cal is not None and cal.id == key:
                    cal.pending = False
                    if res.vector is not None:
                        cal.samples.append(res.vector)
                        st = self._states.get(cal.track_id)
                        if st is not None:  # a sample is also a look at that track
                            st.vectors.append(res.vector)
                continue
            st = self._states.get(key)
            if st is None:
                continue
            st.pending = False
            if res.vector is None:
                st.failures += 1
                continue
            st.failures = 0
            st.vectors.append(res.vector)
            st.matches.append(self.gallery.match(res.vector))
            self._decide(st)

    def _decide(self, st: _TrackState) -> None:
        votes = Counter(m.id for m in st.matches)
        latest = st.matches[-1].id
        if st.resolved:
            challenger, n = max(((i, c) for i, c in votes.items() if i != st.id),
                                key=lambda ic: ic[1], default=(UNKNOWN, 0))
            if n >= self.min_votes and n > votes[st.id]:
                st.id = challenger
            st.contested = latest != st.id
        else:
            winner, n = votes.most_common(1)[0]
            first = st.matches[-1]
            if len(votes) == 1 and first.known and first.distance < self.sure_distance:
                winner, n = first.id, self.min_votes  # unmistakable: no need to wait
            if n >= self.min_votes and 2 * n > len(st.matches):
                st.id, st.resolved, st.contested = winner, True, False
        st.confidence = _vote_confidence(st.matches, st.id) if st.resolved else 0

    def _new_state(self) -> _TrackState:
        return _TrackState(deque(maxlen=self.window), deque(maxlen=self.window))

    def _rematch(self) -> None:
        """The gallery changed: replay each track's stored embeddings against it."""
        for tid, old in list(self._states.items()):
            st = self._new_state()
            st.pending, st.embeds, st.last_time = old.pending, old.embeds, old.last_time
            st.last_size, st.last_facing = old.last_size, old.last_facing
            for v in old.vectors:
                st.vectors.append(v)
                st.matches.append(self.gallery.match(v))
                self._decide(st)
            self._states[tid] = st

    # -- calibration -------------------------------------------------------------------

    def _fail_calibration(self, failure: Failure) -> None:
        cal = self._calibration
        self.last_calibration = CalibrationResult(cal.id, False, len(cal.samples), failure)
        self._calibration = None
        self.store.failed(self.last_calibration)

    def _calibration_miss(self) -> None:
        cal = self._calibration
        cal.misses += 1
        if cal.misses >= CALIBRATION_MAX_MISSES:
            self._fail_calibration(Failure.NO_FACE)

    def _step_calibration(self, tracks: TrackUpdate, now: float) -> None:
        cal = self._calibration
        if cal is None:
            return
        if cal.track_id is None and tracks.faces:
            cal.track_id = max(tracks.faces, key=lambda t: t.face.area).track_id
        present = any(t.track_id == cal.track_id for t in tracks.faces)
        if not present:
            self._calibration_miss()
            return
        cal.misses = 0
        done = now - cal.started >= self.calibration_s or len(cal.samples) >= CALIBRATION_SAMPLES
        if not cal.samples and now - cal.started > self.calibration_s + CALIBRATION_GIVE_UP_S:
            self._fail_calibration(Failure.NO_EMBEDDING)
            return
        if done and not cal.pending and cal.samples:
            self.last_calibration = CalibrationResult(cal.id, True, len(cal.samples))
            self._calibration = None
            self.store.learnt(cal.id, cal.samples, self._apply)

    # -- scheduling --------------------------------------------------------------------

    def _priority(self, t: TrackedFace, now: float) -> int | None:
        st = self._states[t.track_id]
        if st.pending:
            return None
        if st.failures and now - st.last_time < min(2.0, 0.1 * 2 ** st.failures):
            return None  # back off from a face that cannot be embedded
        if not st.resolved or st.contested:
            return 0
        size = _face_size(t)
        if st.last_size and not (1 / self.change_scale < size / st.last_size
                                 < self.change_scale):
            return 1
        if t.face.facing and not st.last_facing:
            return 1
        if now - st.last_time >= self.refresh_s:
            return 2
        return None

    def _schedule(self, image: np.ndarray, tracks: TrackUpdate, now: float) -> None:
        if not self.worker.idle:
            return
        cal = self._calibration
        if cal is not None and not cal.pending and len(cal.samples) < CALIBRATION_SAMPLES:
            for t in tracks.faces:
                if t.track_id == cal.track_id:
                    cal.pending = True
                    self.worker.submit(("cal", cal.id), crop_around(image, t.face.box))
                    return
        best = None
        for t in tracks.faces:
            p = self._priority(t, now)
            if p is None:
                continue
            st = self._states[t.track_id]
            key = (p, st.embeds, st.last_time)
            if best is None or key < best[0]:
                best = (key, t)
        if best is None:
            return
        t = best[1]
        st = self._states[t.track_id]
        st.pending, st.last_time = True, now
        st.last_size, st.last_facing = _face_size(t), t.face.facing
        st.embeds += 1
        self.worker.submit(("track", t.track_id), crop_around(image, t.face.box))

    def close(self) -> None:
        self.worker.close()


def _vote_confidence(matches, id_: int) -> int:
    """Mean confidence of the votes for `id_` × the share of the window they hold."""
    if id_ == UNKNOWN or not matches:
        return 0
    return round(sum(m.confidence for m in matches if m.id == id_) / len(matches))


__all__ = ["CalibrationResult", "Match", "TrackIdentifier", "TrackIdentity"]
