"""YunetDetector: YuNet over a whole picture or one region of it, each find checked twice.

    faces = YunetDetector(model_bytes).detect(rgb)            # a still picture
    faces = detector.detect_region(rgb, (x0, y0, x1, y1))     # one look of the sensor loop

Why a second look: YuNet finds small faces BlazeFace cannot, but on its own it also fires
on dogs, cats and motorbike parts with high scores (0.8+ on dlib's dogs.jpg). A real face
stays a face when looked at again closer up and mirrored; a chance texture rarely does.
So every candidate above a low first-pass threshold is cut out of the picture (three times
its box, squared), resized to `VERIFY_SIZE`, and YuNet runs on it and on its mirror image
in one batch; the candidate's score becomes the mean of the two scores of the face found
at the centre (0 if none). Measured on the shared photos: the false positives on five
no-face photos fall from 4 to at most 1 at the same recall (bench/face_accuracy.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from mlsensors.types import YUNET_LANDMARKS, Face
from mlsensors.vision import yunet
from mlsensors.vision.calibrate import YUNET as YUNET_CALIBRATION
from mlsensors.vision.calibrate import Calibration
from mlsensors.vision.decode import Candidates, concatenate
from mlsensors.vision.facing import FACING_THRESHOLD, facing_scores_from_eyes
from mlsensors.vision.preprocess import check_image
from mlsensors.vision.suppress import hard_nms, iou_matrix

FIRST_PASS_THRESHOLD = 0.1
"""Candidates below this first-pass score are not checked (measured: no true face of the
shared photos is lost by this that the check would keep)."""
VERIFY_SIZE = 160
"""Side of the close-up each candidate is checked on: the face is a third of it, about 53 px,
well inside YuNet's comfortable range."""
VERIFY_CONTEXT = 3.0
"""The close-up spans this many times the candidate's larger side."""
MAX_CANDIDATES = 1000
"""At most this many first-pass candidates (the best) go into NMS, whose cost and memory
grow with the square of their number: a frame of pure noise gave 14,811."""
SAME_FACE_IOU = 0.5
"""A face found in the close-up is the candidate if their boxes overlap this much."""
MAX_UPSCALE_SIDE = 1280
"""Pictures are searched at their own size, and small ones also at twice it, as long as
the larger side stays within this."""
UPSCALED_MAX_FACE = 48
"""Only faces smaller than this (original pixels) are taken from the doubled picture:
it is there for the small ones, and sees large faces worse than the picture itself."""


def square_around(box, k: float) -> tuple[float, float, float]:
    """Centre x, centre y and side of the square k times the box's larger side."""
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, k * max(x1 - x0, y1 - y0)


def cut_square(image: np.ndarray, cx: float, cy: float, side: float, size: int,
               out: np.ndarray) -> None:
    """Write the square of `side` pixels centred at (cx, cy), resized to size×size, into
    `out`; parts outside the picture are black. One affine warp: no copy of the picture."""
    scale = size / side
    matrix = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]],
                      np.float32)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    cv2.warpAffine(image, matrix, (size, size), dst=out, flags=interp,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


class YunetDetector:
    """YuNet with the close-up check; faces in the calibrated 0–1 confidence."""

    def __init__(self, model_bytes: bytes, threads: int | None = None,
                 score_threshold: float = 0.6,
                 calibration: Calibration = YUNET_CALIBRATION) -> None:
        self.model = yunet.YunetModel(model_bytes, threads)
        self.calibration = calibration
        self.score_threshold = float(score_threshold)
        self.raw_threshold = calibration.raw(self.score_threshold)
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
        when `mirror`); its box and landmarks are kept from the first pass (they are as
        good, and need no mapping back)."""
        n = len(c)
        if n == 0:
            return c
        views = 2 if mirror else 1
        crops = np.zeros((views * n, size, size, 3), np.uint8)
        for i, box in enumerate(c.boxes):
            cut_square(image, *square_around(box, VERIFY_CONTEXT), size, crops[i])
            if mirror:
                crops[n + i] = crops[i, :, ::-1]
        tensor = np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2), np.float32)
        grids = self.model.run(tensor)
        expected = np.empty((2 * n, 4), np.float32)
        for i, box in enumerate(c.boxes):
            cx, cy, side = square_around(box, VERIFY_CONTEXT)
            scale = size / side
            x0, y0, x1, y1 = (box - np.array([cx, cy, cx, cy], np.float32)) * scale + size / 2
            expected[i] = (x0, y0, x1, y1)
            expected[n + i] = (size - x1, y0, size - x0, y1)
        scores = np.zeros(views * n, np.float32)
        for b in range(views * n):
            found = yunet.decode([g.batch(b) for g in grids], size, 0.01)
            if not len(found):
                continue
            same = iou_matrix(found.boxes, expected[b:b + 1])[:, 0] >= SAME_FACE_IOU
            if same.any():
                scores[b] = found.scores[same].max()
        checked = (scores[:n] + scores[n:]) / 2 if mirror else scores
        return Candidates(c.boxes, c.keypoints, checked.astype(np.float32))

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
        merged = hard_nms(concatenate(parts), yunet.NMS_IOU)
        return hard_nms(self.accept(image, merged), yunet.NMS_IOU)

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
