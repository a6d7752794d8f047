"""Is the person looking at the camera? Judged from the keypoint geometry alone.

We estimate head yaw from where the nose tip sits between the two ears. Model the head
as a cylinder seen from the front: turned by yaw φ, the nose projects to R·sin φ and the
ears to ±R·cos φ, so (nose − ears' midpoint) / (half the ear-to-ear distance) = tan φ.
The facing score is 1 − |φ| / 90° (1 square on, 0 in profile), and a face counts as
facing within ±30° of yaw: someone who glances at the camera with the head a little
turned is looking at it.

Simple BlazeFace client code compares the two eye-to-ear distances instead (facing at a
ratio ≥ 0.7). Under the same model that ratio falls to about 0.2 at 20° of yaw, so it
calls most people who look at a camera "not facing"; the nose-between-ears estimate
degrades gracefully and gives an angle a user can reason about.
"""

from __future__ import annotations

import numpy as np

from mlsensors.types import Keypoint

FACING_MAX_YAW_DEGREES = 30.0
FACING_THRESHOLD = 1.0 - FACING_MAX_YAW_DEGREES / 90.0


def yaw_degrees(keypoints: np.ndarray) -> np.ndarray:
    """Estimated head yaw per face for keypoints (N, 6, 2); positive when the nose is
    towards the subject's left ear. Faces with coincident ears count as profile (90°)."""
    right_ear = keypoints[:, Keypoint.RIGHT_EAR, 0]
    left_ear = keypoints[:, Keypoint.LEFT_EAR, 0]
    nose = keypoints[:, Keypoint.NOSE_TIP, 0]
    half = np.abs(left_ear - right_ear) / 2
    offset = nose - (left_ear + right_ear) / 2
    sign = np.sign(left_ear - right_ear)
    with np.errstate(divide="ignore", invalid="ignore"):
        yaw = np.degrees(np.arctan2(offset * sign, half))
    return np.where(half > 0, yaw, 90.0).astype(np.float32)


def facing_scores(keypoints: np.ndarray) -> np.ndarray:
    """Facing score in [0, 1] per face (1 = square on); facing when ≥ FACING_THRESHOLD."""
    return np.clip(1.0 - np.abs(yaw_degrees(keypoints)) / 90.0, 0.0, 1.0).astype(np.float32)


NOSE_DEPTH_PER_HALF_EYE_SPAN = 0.8
"""For landmark sets without ears (YuNet's): how far the nose tip stands in front of the
eyes, in units of half the distance between the eyes. Under the same cylinder model,
(nose − eyes' midpoint) / (half the eye distance) = this · tan(yaw) (see
`yaw_degrees_from_eyes`). Chosen so that YuNet's and BlazeFace's yaw agree on the faces
both find in the shared portraits (within 20°; tests/test_farfield.py)."""


def yaw_degrees_from_eyes(keypoints: np.ndarray) -> np.ndarray:
    """Estimated yaw per face for landmarks (N, K, 2) in YuNet's layout (right eye, left
    eye, nose tip first); positive towards the subject's left, like `yaw_degrees`.

    Eyes at ±e across the face and the nose tip d in front of them: turned by φ, the eyes
    project to ±e·cos φ about their midpoint and the nose to d·sin φ from it, so the ratio
    (nose − midpoint) / (half the eye distance) is (d/e)·tan φ.
    """
    right = keypoints[:, 0, 0]
    left = keypoints[:, 1, 0]
    nose = keypoints[:, 2, 0]
    half = np.abs(left - right) / 2
    offset = nose - (left + right) / 2
    sign = np.sign(left - right)
    with np.errstate(divide="ignore", invalid="ignore"):
        yaw = np.degrees(np.arctan2(offset * sign, half * NOSE_DEPTH_PER_HALF_EYE_SPAN))
    return np.where(half > 0, yaw, 90.0).astype(np.float32)


def facing_scores_from_eyes(keypoints: np.ndarray) -> np.ndarray:
    """`facing_scores` for landmark sets without ears."""
    return np.clip(1.0 - np.abs(yaw_degrees_from_eyes(keypoints)) / 90.0, 0.0, 1.0
                   ).astype(np.float32)
