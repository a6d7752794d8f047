"""How the running sensor looks at each frame: a cheap pass over all of it, one far-field
look at one region of it, and a tracker that holds what was found in between.

    scanner = Scanner.for_frames(yunet_detector)     # or Scanner.blazeface(full, short)
    faces = scanner.detect(frame_rgb)                # every frame, in order

Why: a face 4 m away is about 20 px tall at 640×480; YuNet finds it at the frame's own
size, but a full-size pass costs about 3–4 bare BlazeFace invokes here, more than the
sensor's budget on every frame. Time is the sensor's friend instead:

- every frame, YuNet looks at the whole frame at 0.4 of its size (about half a bare
  BlazeFace invoke): every face from ~40 px up, and every change of the scene, is seen at
  once;
- every frame, YuNet also looks at one region of the frame at full size (regions overlap
  by more than a far face, and are visited round-robin, so the whole frame is covered
  every `len(regions)` frames: 6 at 640×480, 0.2 s at 30 fps);
- a candidate that no live track explains is checked on a close-up before it becomes a
  face (`YunetDetector.verify`; the dogs and motorbikes of the accuracy bench), and a
  spot that failed that check is not checked again until its region comes round;
- the tracker keeps each face between the looks that can see it: a small face is only
  counted missing when its region is looked at again and it is not there, so it does
  not flicker between visits.

Without YuNet (its file not fetched) the sensor runs BlazeFace full-range on every frame,
and the short-range model instead when the largest face fills the view (it is cheaper
and was trained for such faces).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlsensors.person.track import Tracker
from mlsensors.types import Box, Face
from mlsensors.vision.decode import Candidates, concatenate
from mlsensors.vision.suppress import hard_nms, iou_matrix

REGION_SIZE = (256, 288)
"""Width and height of one far-field region (multiples of 32): six cover a 640×480
frame (three across, two down); YuNet costs about half a bare BlazeFace invoke on one."""
REGION_OVERLAP = 48
"""Regions overlap by at least this many pixels: more than a far face is tall, so each
one lies whole inside some region."""
CHEAP_SCALE = 0.4
"""The whole-frame pass runs at this fraction of the frame's size (256×192 of 640×480:
about half a bare BlazeFace invoke)."""
CHEAP_MIN_FACE = 48
"""The whole-frame pass reliably sees faces at least this tall (frame pixels); smaller
ones are counted missing only by the region pass that covers them."""
MAX_MISSES = 1
"""Looks that can see a face and miss it before it is dropped: one miss is forgiven (a
far face's first-pass score wavers around the threshold). A far face that leaves is
dropped two visits of its region later: 0.4 s at 640×480 and 30 fps."""
SAME_FACE_IOU = 0.3
REJECT_FRAMES = 30
"""A spot that failed the close-up check is not checked again for this many frames
(a second at 30 fps): junk that the first pass keeps proposing costs little."""
CHECK_SIZE = 128
"""The sensor's close-up check is made at 128 px (stills: 160): cheaper, and the tracker
and the next looks make up for a rare wrong call."""
RECHECK_FRAMES = 6
"""A track kept only by weak candidates is checked again after this many frames."""
CHECK_FROM = 0.3
"""A candidate no track explains is checked only from this first-pass score (a track
is kept from `FIRST_PASS_THRESHOLD` up): the few true new faces under it are found a
frame later, and most junk never costs a check."""

CLOSE_UP_FRACTION = 0.2
"""BlazeFace fallback: switch to the short-range model while the largest face's box is
at least this fraction of the frame's height (a head under a metre away with a usual
webcam lens; a portrait photo's face is about 0.25)."""


def spread(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets of windows of `size` covering 0..length with at least `overlap`."""
    if size >= length:
        return [0]
    count = math.ceil((length - overlap) / (size - overlap))
    step = (length - size) / (count - 1)
    return [round(i * step) for i in range(count)]


def regions(width: int, height: int, size: tuple[int, int] = REGION_SIZE,
            overlap: int = REGION_OVERLAP) -> list[tuple[int, int, int, int]]:
    """The far-field regions (x0, y0, x1, y1) of a frame, row by row."""
    w, h = min(size[0], width), min(size[1], height)
    return [(x, y, x + w, y + h) for y in spread(height, h, overlap)
            for x in spread(width, w, overlap)]


def inside(box: Box, region: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = box
    return x0 >= region[0] and y0 >= region[1] and x1 <= region[2] and y1 <= region[3]


def overlaps_any(face: Face, others: list[Face]) -> bool:
    """True if `face` is already explained by one of `others`, seen more lately (they
    overlap, or either's centre lies in the other): it is a stale copy."""
    if not others:
        return False
    boxes = np.array([f.box for f in others], np.float32)
    box = np.array([face.box], np.float32)
    if (iou_matrix(box, boxes) > 0.1).any():
        return True
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    x0, y0, x1, y1 = face.box
    if ((cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)).any():
        return True
    fx, fy = (x0 + x1) / 2, (y0 + y1) / 2
    return bool(((fx >= boxes[:, 0]) & (fx <= boxes[:, 2]) & (fy >= boxes[:, 1])
                 & (fy <= boxes[:, 3])).any())


@dataclass(slots=True)
class _Rejected:
    box: np.ndarray
    until: int


class Scanner:
    """The sensor's per-frame detection with YuNet; faces in the frame's pixels."""

    def __init__(self, detector) -> None:
        """`detector`: a `vision.yunet_detector.YunetDetector`."""
        self.detector = detector
        self.tracker = Tracker(max_misses=MAX_MISSES, min_iou=0.2, max_scale_change=1.8)
        self.frame = 0
        self._regions: list[tuple[int, int, int, int]] = []
        self._size = (0, 0)
        self._faces: dict[int, Face] = {}
        self._seen: dict[int, int] = {}
        self._checked: dict[int, int] = {}
        self._rejected: list[_Rejected] = []
        self.looks = 0
        """How many region looks were made (for the bench and tests)."""
        self.checks = 0
        """How many candidates were checked on a close-up."""

    def reset(self) -> None:
        self.tracker.reset()
        self._faces.clear()
        self._seen.clear()
        self._checked.clear()
        self._rejected.clear()

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        if (w, h) != self._size:
            self._size = (w, h)
            self._regions = regions(w, h)
            self.reset()
        region = self._regions[self.frame % len(self._regions)]
        self.frame += 1
        det = self.detector
        cheap = det.candidates(image, CHEAP_SCALE)
        far = det.detect_region(image, region, check=False)
        found = hard_nms(concatenate([cheap, far]), 0.45)
        found = self._accept(image, found)
        faces = det.faces(found, w, h)

        def looked(box: Box) -> bool:
            return box[3] - box[1] >= CHEAP_MIN_FACE or inside(box, region)

        update = self.tracker.update(faces, looked)
        for t in update.faces:
            self._faces[t.track_id] = t.face
            self._seen[t.track_id] = self.frame
        alive = self.tracker.boxes()
        kept: list[Face] = []
        for tid in sorted(self._faces, key=lambda t: -self._seen[t]):
            if tid not in alive or overlaps_any(self._faces[tid], kept):
                del self._faces[tid]
                del self._seen[tid]
                self._checked.pop(tid, None)
                continue
            kept.append(self._faces[tid])
        self.looks += 1
        return sorted(kept, key=lambda f: -f.score)

    def _accept(self, image: np.ndarray, c: Candidates) -> Candidates:
        """Candidates a live track explains pass, with the track's checked score (a far
        face's first-pass score wavers; it was checked when the track began), one per
        track; a weak one is checked again if its track was not checked lately, so that
        background where a face was cannot keep the track alive. The others are checked
        on a close-up, unless the same spot failed that check lately."""
        if len(c) == 0:
            return c
        self._rejected = [r for r in self._rejected if r.until > self.frame]
        ids = list(self._faces)
        known = np.array([self._faces[t].box for t in ids], np.float32).reshape(-1, 4)
        overlap = iou_matrix(c.boxes, known) if len(known) else np.zeros((len(c), 0))
        near = overlap > SAME_FACE_IOU
        tracked = np.zeros(len(c), bool)
        stale = np.zeros(len(c), bool)
        scores = c.scores.copy()
        calibration = self.detector.calibration
        for j, tid in enumerate(ids):
            if not near[:, j].any():
                continue
            best = int(np.flatnonzero(near[:, j])[np.argmax(c.scores[near[:, j]])])
            if tracked[best] or stale[best]:
                continue
            if c.scores[best] < CHECK_FROM and \
                    self.frame - self._checked.get(tid, -RECHECK_FRAMES) > RECHECK_FRAMES:
                stale[best] = True
                self._checked[tid] = self.frame
                continue
            tracked[best] = True
            scores[best] = max(scores[best], calibration.raw(self._faces[tid].score))
        c = Candidates(c.boxes, c.keypoints, scores)
        if self._rejected:
            spots = np.stack([r.box for r in self._rejected])
            failed = (iou_matrix(c.boxes, spots) > 0.5).any(axis=1)
        else:
            failed = np.zeros(len(c), bool)
        ask = (~near.any(axis=1) & ~failed & (c.scores >= CHECK_FROM)) | stale
        out = [c.take(tracked)]
        if ask.any():
            asked = self.detector.verify(image, c.take(ask), CHECK_SIZE)
            self.checks += len(asked)
            good = asked.scores >= self.detector.raw_threshold
            out.append(asked.take(good))
            until = self.frame + REJECT_FRAMES
            self._rejected += [_Rejected(b, until) for b in asked.boxes[~good]]
        return concatenate(out)


class BlazeFaceScanner:
    """The sensor's per-frame detection without YuNet: BlazeFace full-range, and the
    short-range model while the largest face fills the view."""

    def __init__(self, full, short=None) -> None:
        self.full = full
        self.short = short
        self._close = False

    def detect(self, image: np.ndarray) -> list[Face]:
        use_short = self._close and self.short is not None
        faces = (self.short if use_short else self.full).detect(image)
        if use_short and not faces:
            faces = self.full.detect(image)
        h = image.shape[0]
        largest = max((f.box[3] - f.box[1] for f in faces), default=0.0)
        self._close = largest >= CLOSE_UP_FRACTION * h
        return faces

