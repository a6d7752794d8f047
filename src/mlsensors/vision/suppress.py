"""Weighted non-max suppression, as MediaPipe's NonMaxSuppressionCalculator (WEIGHTED).

BlazeFace fires on several neighbouring anchors for one face. Taking the top-scoring
candidate, its cluster is every remaining candidate (itself included) whose IoU with
it is strictly greater than the threshold; the cluster becomes one face whose box and
keypoints are the score-weighted mean of the cluster's, with the top candidate's score.
The cluster is removed and the process repeats. Averaging, rather than keeping only the
top box, steadies the box from frame to frame.
"""

from __future__ import annotations

import numpy as np

from mlsensors.vision.decode import Candidates

DEFAULT_IOU_THRESHOLD = 0.3


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4); 0 where the union is empty."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def weighted_nms(
    candidates: Candidates, iou_threshold: float = DEFAULT_IOU_THRESHOLD
) -> Candidates:
    """Merge overlapping candidates; output sorted by score, highest first."""
    n = len(candidates)
    if n <= 1:
        return candidates
    order = np.argsort(-candidates.scores, kind="stable")
    boxes = candidates.boxes[order]
    keypoints = candidates.keypoints[order]
    scores = candidates.scores[order]
    overlaps = iou_matrix(boxes, boxes) > iou_threshold
    np.fill_diagonal(overlaps, True)
    remaining = np.ones(n, dtype=bool)
    out_boxes, out_keypoints, out_scores = [], [], []
    for top in range(n):
        if not remaining[top]:
            continue
        cluster = remaining & overlaps[top]
        weights = scores[cluster]
        total = weights.sum()
        out_boxes.append((boxes[cluster] * weights[:, None]).sum(axis=0) / total)
        out_keypoints.append((keypoints[cluster] * weights[:, None, None]).sum(axis=0) / total)
        out_scores.append(scores[top])
        remaining &= ~cluster
    return Candidates(
        np.asarray(out_boxes, np.float32),
        np.asarray(out_keypoints, np.float32),
        np.asarray(out_scores, np.float32),
    )


def hard_nms(candidates: Candidates, iou_threshold: float) -> Candidates:
    """Greedy non-max suppression keeping each cluster's top candidate unchanged (what
    YuNet's authors and OpenCV use); output sorted by score, highest first."""
    n = len(candidates)
    if n <= 1:
        return candidates
    order = np.argsort(-candidates.scores, kind="stable")
    boxes = candidates.boxes[order]
    overlaps = iou_matrix(boxes, boxes) > iou_threshold
    remaining = np.ones(n, dtype=bool)
    keep = []
    for top in range(n):
        if not remaining[top]:
            continue
        keep.append(top)
        remaining &= ~overlaps[top]
    return candidates.take(order[keep])
