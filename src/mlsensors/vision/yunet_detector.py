"""YunetDetector: YuNet over a whole picture or one region of it, each find checked twice.

    faces = YunetDetector(model_bytes, judge=retinaface).detect(rgb)   # a still picture
    c = detector.detect_region(rgb, (x0, y0, x1, y1))                  # one look of the sensor

Why a check: YuNet finds small faces BlazeFace cannot, but on its own it also fires on
dogs, cats and motorbike parts with high scores (0.8+ on dlib's dogs.jpg). A real face
stays a face when looked at again closer up and mirrored; a chance texture rarely does.
So every candidate above a low first-pass threshold is cut out of the picture (three times
its box, squared), resized to `VERIFY_SIZE`, and looked at again with its mirror image in
one batch (`vision.closeup`); the candidate's score becomes the mean of the scores of the
face found at the centre (0 if none).

Who looks again: YuNet itself, and for still pictures also an independent network,
RetinaFace (`vision.retinaface`, the `judge`); the score is then the mean of the two
networks' close-up scores. YuNet alone scores some real faces (turned, blurred, half
hidden) lower than a dog's head; the two networks err on different pictures, so their
mean ranks faces above the junk better than either (bench/face_accuracy.py: WIDER AP
0.72 → 0.80 at the same false positives). The sensor loop checks with YuNet alone: its
tracker and repeated looks make up for a rare wrong call, at a fraction of the cost.
"""

from __future__ import annotations

import cv2
import numpy as np

from mlsensors.types import YUNET_LANDMARKS, Face
from mlsensors.vision import yunet
from mlsensors.vision.calibrate import YUNET as YUNET_CALIBRATION
from mlsensors.vision.calibrate import YUNET_RETINAFACE, Calibration
from mlsensors.vision.closeup import Closeups, closeups
from mlsensors.vision.decode import Candidates, concatenate
from mlsensors.vision.facing import FACING_THRESHOLD, facing_scores_from_eyes
from mlsensors.vision.preprocess import check_image
from mlsensors.vision.suppress import hard_nms, weighted_nms

FIRST_PASS_THRESHOLD = 0.1
"""Candidates below this first-pass score are not checked (measured: no true face of the
shared photos is lost by this that the check would keep)."""
VERIFY_SIZE = 160
"""Side of the close-up each candidate is checked on: the face is a third of it, about 53 px,
well inside YuNet's comfortable range."""
MAX_CANDIDATES = 1000
"""At most this many first-pass candidates (the best) go into NMS, whose cost and memory
grow with the square of their number: a frame of pure noise gave 14,811."""
MAX_UPSCALE_SIDE = 2048
"""Pictures are searched at their own size, and also at twice it as long as the larger
side stays within this (a 1024-px photo of a crowd: its 16–24 px faces are found far
more often at twice the size; WIDER recall for faces ≥ 16 px 0.76 → 0.81)."""
UPSCALED_MAX_FACE = 48
"""Only faces smaller than this (original pixels) are taken from the doubled picture:
it is there for the small ones, and sees large faces worse than the picture itself."""
MIN_FACE = 10
"""Candidates whose larger side is under this (original pixels) are dropped before the
check: its close-up would be 30 px of blur magnified five times, nothing to judge (WIDER's
own evaluation leaves such faces out). The doubled pass proposes them on ties and print."""
JUDGE_FROM = 0.05
"""The judge (RetinaFace) is asked only about candidates YuNet's close-up sees at all
(score ≥ this; 39% of the WIDER photos' candidates are under it): below it the mean
could pass only if RetinaFace were near-certain where YuNet sees nothing, and measured
on the shared photos no candidate kept by the mean was under it."""
MERGE_IOU = yunet.NMS_IOU
"""Checked faces overlapping more than this are one face: its box and landmarks are the
mean of theirs weighted by their checked scores (MediaPipe's weighted NMS), so the passes
at two sizes and the neighbouring grid points agree on one box."""


class YunetDetector:
    """YuNet with the close-up check; faces in the calibrated 0–1 confidence."""

    def __init__(self, model_bytes: bytes, threads: int | None = None,
                 score_threshold: float = 0.6, judge=None) -> None:
        """`judge`: a `vision.retinaface.RetinaFaceModel` that checks each candidate too
        (still pictures), or None (YuNet checks alone: the sensor loop)."""
        self.model = yunet.YunetModel(model_bytes, threads)
        self.judge = judge
        self.calibration: Calibration = YUNET_RETINAFACE if judge is not None \
            else YUNET_CALIBRATION
        self.score_threshold = float(score_threshold)
        self.raw_threshold = self.calibration.raw(self.score_threshold)
        self._inputs: dict[tuple[int, ...], np.ndarray] = {}

    # -- passes -----------------------------------------------------------------------

    def candidates(self, image: np.ndarray, scale: float = 1.0,
                   threshold: float = FIRST_PASS_THRESHOLD) -> Candidates:
        """One YuNet pass over `image` resized by `scale`: candidates in its pixels."""
        if scale != 1.0:
            h, w = image.shape[:2]
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            image = cv2.resize(image, size, interpolation=interp)
        h, w = image.shape[:2]
        key = (h, w)
        tensor = yunet.to_input(image, self._inputs.get(key))
        self._inputs[key] = tensor
        c = yunet.decode(self.model.run(tensor), tensor.shape[3], threshold)
        if len(c) > MAX_CANDIDATES:  # noise can light up every grid point
            c = c.take(np.argsort(-c.scores, kind="stable")[:MAX_CANDIDATES])
        c = hard_nms(c, yunet.NMS_IOU)
        if scale != 1.0 and len(c):
            c = Candidates(c.boxes / scale, c.keypoints / scale, c.scores)
        return c

    def verify(self, image: np.ndarray, c: Candidates, size: int = VERIFY_SIZE,
               mirror: bool = True) -> Candidates:
        """Each candidate re-scored by the close-up check (`size` px, and its mirror image
        when `mirror`; YuNet's score, or the mean of YuNet's and the judge's); its box and
        landmarks are kept from the first pass (they are as good, and need no mapping
        back)."""
        if len(c) == 0:
            return c
        views = closeups(image, c.boxes, size, mirror)
        checked = self.closeup_scores(views)
        if self.judge is not None:
            ask = np.flatnonzero(checked >= JUDGE_FROM)
            second = np.zeros(len(c), np.float32)
            if len(ask):
                second[ask] = self.judge.closeup_scores(views.take(ask))
            checked = (checked + second) / 2
        return Candidates(c.boxes, c.keypoints, checked.astype(np.float32))

    def closeup_scores(self, views: Closeups) -> np.ndarray:
        """YuNet's score of each candidate's close-ups (mean over its views)."""
        tensor = np.ascontiguousarray(views.crops[..., ::-1].transpose(0, 3, 1, 2), np.float32)
        grids = self.model.run(tensor)
        scores = [views.best_match(k, yunet.decode([g.batch(k) for g in grids], views.size,
                                                   0.01))
                  for k in range(len(views.crops))]
        return views.per_candidate(np.array(scores, np.float32))

    def accept(self, image: np.ndarray, c: Candidates) -> Candidates:
        """Candidates that pass the close-up check at the detector's threshold."""
        c = self.verify(image, c)
        return c.take(c.scores >= self.raw_threshold)

    # -- what callers use --------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces of a still picture, highest score first, in its pixels."""
        check_image(image)
        h, w = image.shape[:2]
        return self.faces(self._search(image), w, h)

    def detect_region(self, image: np.ndarray, region: tuple[int, int, int, int],
                      scale: float = 1.0, check: bool = True) -> Candidates:
        """Unchecked or checked candidates (frame pixels) of one region of a frame; faces
        cut by the region's inner edges are left to the region beside it."""
        from mlsensors.vision.detector import drop_cut_faces

        x0, y0, x1, y1 = region
        h, w = image.shape[:2]
        c = self.candidates(image[y0:y1, x0:x1], scale)
        c = drop_cut_faces(c, region, w, h).shifted(x0, y0)
        return self.accept(image, c) if check else c

    def _search(self, image: np.ndarray) -> Candidates:
        h, w = image.shape[:2]
        parts = [self.candidates(image)]
        if 2 * max(h, w) <= MAX_UPSCALE_SIDE:
            small = self.candidates(image, 2.0)
            sides = np.maximum(small.boxes[:, 2] - small.boxes[:, 0],
                               small.boxes[:, 3] - small.boxes[:, 1])
            parts.append(small.take(sides < UPSCALED_MAX_FACE))
        c = concatenate(parts)
        sides = np.maximum(c.boxes[:, 2] - c.boxes[:, 0], c.boxes[:, 3] - c.boxes[:, 1])
        return weighted_nms(self.accept(image, c.take(sides >= MIN_FACE)), MERGE_IOU)

    def faces(self, c: Candidates, width: int, height: int) -> list[Face]:
        """Checked candidates in pixels → Face objects, boxes clipped to the picture."""
        if len(c) == 0:
            return []
        order = np.argsort(-c.scores, kind="stable")
        facing = facing_scores_from_eyes(c.keypoints)
        out = []
        for i in order:
            x0, y0, x1, y1 = (float(v) for v in c.boxes[i])
            x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
            y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
            if x1 <= x0 or y1 <= y0:
                continue
            out.append(Face(
                box=(x0, y0, x1, y1),
                score=self.calibration.confidence(float(c.scores[i])),
                keypoints=tuple((float(x), float(y)) for x, y in c.keypoints[i]),
                facing=bool(facing[i] >= FACING_THRESHOLD),
                facing_score=float(facing[i]),
                landmarks=YUNET_LANDMARKS,
                model="yunet",
            ))
        return out
