"""Raw BlazeFace tensors → candidate faces, as MediaPipe's TensorsToDetectionsCalculator.

Each anchor's 16 regressor values are x_center, y_center, w, h, then six (x, y)
keypoints, all in input pixels relative to the anchor centre; dividing by the input
size (x/y/w/h scale) makes them relative to the square input. The score is
sigmoid(clip(raw, -100, 100)). Candidates below the threshold, or with a negative or
NaN size, are dropped. The threshold is applied to the raw logit first, so only the
few surviving anchors are decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlsensors.errors import InputError

NUM_KEYPOINTS = 6
VALUES_PER_ANCHOR = 4 + 2 * NUM_KEYPOINTS
SCORE_CLIP = 100.0


@dataclass(frozen=True, slots=True)
class Candidates:
    """Decoded faces: boxes (N, 4) as x0, y0, x1, y1, keypoints (N, K, 2) (K landmarks of
    the model's layout), scores (N,). Sorted by nothing in particular."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def empty(cls, keypoints: int = NUM_KEYPOINTS) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0, keypoints, 2), np.float32),
                   np.zeros((0,), np.float32))

    def shifted(self, dx: float, dy: float) -> Candidates:
        """The candidates moved by (dx, dy) pixels (from a region into its picture)."""
        offset = np.array([dx, dy], np.float32)
        return Candidates(self.boxes + np.tile(offset, 2), self.keypoints + offset, self.scores)

    def take(self, keep: np.ndarray) -> Candidates:
        """The candidates selected by a boolean mask or index array."""
        return Candidates(self.boxes[keep], self.keypoints[keep], self.scores[keep])


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def decode(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    input_size: int,
    score_threshold: float,
) -> Candidates:
    """Decode the model's regressors (N, 16) and logits (N,) against anchors (N, 2)."""
    raw_boxes = np.asarray(raw_boxes, dtype=np.float32).reshape(-1, VALUES_PER_ANCHOR)
    raw_scores = np.asarray(raw_scores, dtype=np.float32).reshape(-1)
    if not (raw_boxes.shape[0] == raw_scores.shape[0] == anchors.shape[0]):
        raise InputError(
            f"model output has {raw_boxes.shape[0]} boxes and {raw_scores.shape[0]} scores "
            f"for {anchors.shape[0]} anchors"
        )
    if not 0.0 < score_threshold < 1.0:
        raise InputError(f"score threshold {score_threshold} is outside (0, 1)")
    keep = np.flatnonzero(raw_scores >= _logit(score_threshold))
    if keep.size == 0:
        return Candidates.empty()
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep], -SCORE_CLIP, SCORE_CLIP)))
    keep = keep[scores >= score_threshold]
    scores = scores[scores >= score_threshold]
    values = raw_boxes[keep] / np.float32(input_size)
    centres = anchors[keep]
    cx = values[:, 0] + centres[:, 0]
    cy = values[:, 1] + centres[:, 1]
    half_w = values[:, 2] / 2
    half_h = values[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    keypoints = values[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + centres[:, None, :]
    valid = (values[:, 2] >= 0) & (values[:, 3] >= 0)
    valid &= np.isfinite(boxes).all(axis=1) & np.isfinite(keypoints).all(axis=(1, 2))
    return Candidates(boxes[valid], keypoints[valid], scores[valid].astype(np.float32))


def concatenate(parts: list[Candidates]) -> Candidates:
    """All candidates of several passes in one set (same landmark layout)."""
    return Candidates(np.concatenate([p.boxes for p in parts]),
                      np.concatenate([p.keypoints for p in parts]),
                      np.concatenate([p.scores for p in parts]))
