"""Face tracking across frames: stable track ids from per-frame detections.

Identification is too slow to run on every face of every frame (~100 ms an embedding),
so the sensor follows each face from frame to frame and identifies the *track*. The
tracker only needs boxes: each track predicts its next box from a constant-velocity
model, detections are assigned to predictions by an overlap-and-distance cost (greedy,
cheapest pair first: optimal enough for the ≤ 10 faces a sensor sees, and it keeps two
people who cross on their own paths because the prediction carries each past the
other), and a track survives `max_misses` frames without a detection (a blink of the
detector, a dropped or corrupt frame) before it ends.

Pure: no clock, no I/O; a frame is one step of the motion model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlsensors.types import Box, Face

MAX_MISSES = 2
"""Frames a track may go undetected (missed, dropped or corrupt) and still continue."""


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre(b: Box) -> tuple[float, float]:
    return (b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0


def _size(b: Box) -> float:
    return math.sqrt(max(b[2] - b[0], 1e-6) * max(b[3] - b[1], 1e-6))


@dataclass(frozen=True, slots=True)
class TrackedFace:
    """A detection with the track it belongs to."""

    track_id: int
    face: Face
    age: int
    """Frames this track has been detected in, this one included."""
    new: bool
    """True on the track's first frame."""


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """One frame's tracking: its faces with their track ids, and the ids that ended."""

    faces: tuple[TrackedFace, ...]
    ended: tuple[int, ...]


@dataclass(slots=True)
class _Track:
    id: int
    box: Box
    velocity: tuple[float, float] = (0.0, 0.0)
    hits: int = 1
    misses: int = 0

    def predict(self, steps: int) -> Box:
        dx, dy = self.velocity[0] * steps, self.velocity[1] * steps
        x0, y0, x1, y1 = self.box
        return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


class Tracker:
    """Assigns each frame's faces to tracks. Feed every frame, even empty or missing ones.

    `update(faces)` for each processed frame (faces may be empty); `skip()` for a frame
    that did not arrive or could not be decoded. Both age unmatched tracks.
    """

    def __init__(
        self,
        *,
        max_misses: int = MAX_MISSES,
        min_iou: float = 0.1,
        max_centre_distance: float = 1.0,
        max_scale_change: float = 1.6,
    ) -> None:
        """`max_centre_distance` is in units of the box size (√(w·h)) of the track."""
        self.max_misses = int(max_misses)
        self.min_iou = float(min_iou)
        self.max_centre_distance = float(max_centre_distance)
        self.max_scale_change = float(max_scale_change)
        self._tracks: dict[int, _Track] = {}
        self._next_id = 0

    @property
    def active_ids(self) -> list[int]:
        """Ids of the tracks alive now (detected this frame or coasting on misses)."""
        return sorted(self._tracks)

    def reset(self) -> None:
        self._tracks.clear()

    def skip(self) -> TrackUpdate:
        """A frame without a picture: every track misses once."""
        return TrackUpdate((), tuple(self._age(set())))

    def boxes(self) -> dict[int, Box]:
        """Each live track's last detected box."""
        return {tid: tr.box for tid, tr in self._tracks.items()}

    def _age(self, matched: set[int], looked: Callable[[Box], bool] | None = None) -> list[int]:
        ended = []
        for tid, tr in list(self._tracks.items()):
            if tid in matched:
                continue
            if looked is not None and not looked(tr.box):
                continue
            tr.misses += 1
            if tr.misses > self.max_misses:
                ended.append(tid)
                del self._tracks[tid]
        return ended

    def _cost(self, tr: _Track, box: Box) -> float | None:
        pred = tr.predict(tr.misses + 1)
        overlap = iou(pred, box)
        size = _size(pred)
        (px, py), (bx, by) = _centre(pred), _centre(box)
        dist = math.hypot(px - bx, py - by) / size
        scale = _size(box) / size
        if scale > self.max_scale_change or scale < 1.0 / self.max_scale_change:
            return None
        if overlap < self.min_iou and dist > self.max_centre_distance:
            return None
        return dist - overlap

    def update(self, faces: Sequence[Face],
               looked: Callable[[Box], bool] | None = None) -> TrackUpdate:
        """The tracked faces, in the order of `faces`, and the tracks that just ended.

        `looked(box)` says whether this frame's detection looked where a track's face is
        and could have seen it; a track it did not look at is held without a miss (the
        sensor's far-field pass visits each region only every few frames). None: every
        track was looked at."""
        pairs = []
        for tid, tr in self._tracks.items():
            for j, f in enumerate(faces):
                c = self._cost(tr, f.box)
                if c is not None:
                    pairs.append((c, tid, j))
        pairs.sort()
        assigned: dict[int, int] = {}
        used: set[int] = set()
        for _, tid, j in pairs:
            if tid in used or j in assigned:
                continue
            assigned[j] = tid
            used.add(tid)
        out = []
        for j, f in enumerate(faces):
            tid = assigned.get(j)
            if tid is None:
                tid = self._next_id
                self._next_id += 1
                self._tracks[tid] = _Track(tid, f.box)
                out.append(TrackedFace(tid, f, 1, True))
                continue
            tr = self._tracks[tid]
            steps = tr.misses + 1
            (ox, oy), (nx, ny) = _centre(tr.box), _centre(f.box)
            measured = ((nx - ox) / steps, (ny - oy) / steps)
            tr.velocity = (0.5 * tr.velocity[0] + 0.5 * measured[0],
                           0.5 * tr.velocity[1] + 0.5 * measured[1])
            tr.box, tr.misses = f.box, 0
            tr.hits += 1
            out.append(TrackedFace(tid, f, tr.hits, False))
        ended = self._age(used | {t.track_id for t in out}, looked)
        return TrackUpdate(tuple(out), tuple(ended))
