"""Close-ups: the square around a candidate face, cut out at a fixed size, and its mirror
image, in one batch that a detector re-scores (the check of `vision.yunet_detector`).

    views = closeups(image, boxes, size=160)     # views.crops (2N, S, S, 3) RGB uint8
    scores = judge.closeup_scores(views)         # (N,): mean over a view and its mirror

Why a close-up: a face found small is looked at again at a size the judging network
handles best (the face a third of the square, ~53 px at 160), with context around it,
and mirrored: a real face stays a face when mirrored, a chance texture often does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mlsensors.vision.decode import Candidates
from mlsensors.vision.suppress import iou_matrix

CONTEXT = 3.0
"""The close-up spans this many times the candidate's larger side."""
SAME_FACE_IOU = 0.5
"""A face found in the close-up is the candidate if their boxes overlap this much."""


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


@dataclass(frozen=True, slots=True)
class Closeups:
    """`views` close-ups of each of n candidates: crops[v·n + i] is view v of candidate i
    (view 1 the mirror image of view 0); expected[k] is where the candidate's box lies
    in crops[k]."""

    crops: np.ndarray
    expected: np.ndarray
    views: int

    @property
    def count(self) -> int:
        return len(self.crops) // self.views

    @property
    def size(self) -> int:
        return int(self.crops.shape[1])

    def take(self, index: np.ndarray) -> Closeups:
        """The close-ups of the candidates at `index` (all their views)."""
        rows = (np.arange(self.views)[:, None] * self.count + index[None, :]).reshape(-1)
        return Closeups(self.crops[rows], self.expected[rows], self.views)

    def per_candidate(self, scores: np.ndarray) -> np.ndarray:
        """Scores per crop → the mean over each candidate's views."""
        return scores.reshape(self.views, self.count).mean(axis=0).astype(np.float32)

    def best_match(self, k: int, found: Candidates) -> float:
        """The best score of the faces found in crop k that are the candidate (0 if none)."""
        if not len(found):
            return 0.0
        same = iou_matrix(found.boxes, self.expected[k:k + 1])[:, 0] >= SAME_FACE_IOU
        return float(found.scores[same].max()) if same.any() else 0.0


def closeups(image: np.ndarray, boxes: np.ndarray, size: int, mirror: bool = True,
             context: float = CONTEXT) -> Closeups:
    """The close-ups of each box (and their mirror images when `mirror`)."""
    n = len(boxes)
    views = 2 if mirror else 1
    crops = np.zeros((views * n, size, size, 3), np.uint8)
    expected = np.empty((views * n, 4), np.float32)
    for i, box in enumerate(boxes):
        cx, cy, side = square_around(box, context)
        cut_square(image, cx, cy, side, size, crops[i])
        scale = size / side
        x0, y0, x1, y1 = (np.asarray(box, np.float32) - np.array([cx, cy, cx, cy])) * scale \
            + size / 2
        expected[i] = (x0, y0, x1, y1)
        if mirror:
            crops[n + i] = crops[i, :, ::-1]
            expected[n + i] = (size - x1, y0, size - x0, y1)
    return Closeups(crops, expected, views)
