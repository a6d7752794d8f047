"""Synthetic 640×480, 30 fps videos with far faces, made from the shared photographs.

No camera is needed to test or measure the sensor on faces 4 m away: real faces from the
shared portraits are scaled to ~20 px and pasted (soft-edged) into a slowly panning,
face-free background (dlib's dogs.jpg), appearing and leaving at known frames and places.
Each frame comes with the truth: the box of every face visible in it. Used by
tests/test_scan.py and bench/sensor_bench.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

W, H = 640, 480
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
"""The shared test data beside the checkout (the benches' default --data)."""


@dataclass(frozen=True)
class Appearance:
    """One face: which portrait, its height in px, where and when it is in view."""

    portrait: str
    height: float
    start: tuple[float, float]
    end: tuple[float, float]
    first: int
    last: int


def face_patch(image: np.ndarray, box, height: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The face with context, scaled so its box is `height` px tall; a soft mask; the
    scale factor."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = 1.1 * max(x1 - x0, y1 - y0)
    crop = image[max(0, int(cy - half)):int(cy + half), max(0, int(cx - half)):int(cx + half)]
    scale = height / (y1 - y0)
    size = max(4, round(crop.shape[0] * scale))
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot((xx - size / 2) / (size * 0.42), (yy - size / 2) / (size * 0.48))
    mask = np.clip((1.0 - r) / 0.15, 0.0, 1.0)[..., None]
    return crop, mask, scale


def paste(frame: np.ndarray, crop: np.ndarray, mask: np.ndarray, cx: float, cy: float) -> None:
    """Blend a square patch into a W×H float frame, centred at (cx, cy), clipped."""
    s = crop.shape[0]
    x, y = round(cx - s / 2), round(cy - s / 2)
    fx0, fy0, fx1, fy1 = max(0, x), max(0, y), min(W, x + s), min(H, y + s)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    c = crop[fy0 - y:fy1 - y, fx0 - x:fx1 - x]
    m = mask[fy0 - y:fy1 - y, fx0 - x:fx1 - x]
    frame[fy0:fy1, fx0:fx1] = frame[fy0:fy1, fx0:fx1] * (1 - m) + c * m


FAR_SCENE = (
    Appearance("obama.jpg", 20, (80, 100), (120, 110), 15, 119),
    Appearance("biden.jpg", 21, (520, 380), (480, 370), 40, 119),
    Appearance("alex-lacamoire.png", 22, (330, 70), (330, 90), 60, 100),
    Appearance("lin-manuel-miranda.png", 20, (200, 330), (260, 320), 75, 119),
)
"""Four far faces (20–22 px) that appear one by one in different regions of the frame,
one of them leaving before the end."""


class Scene:
    """A synthetic video: `frames(n)` yields (RGB frame, [truth boxes]) per frame."""

    def __init__(self, data: Path, detect, appearances=FAR_SCENE) -> None:
        """`detect(image) -> list[Face]` places each portrait's face (found once, on the
        full-size portrait)."""
        from mlsensors.sources import read_image

        faces = data / "faces"
        bg = read_image(faces / "dlib_training" / "dogs.jpg")
        self.background = cv2.resize(bg, (W + 80, H + 60), interpolation=cv2.INTER_AREA)
        self.appearances = appearances
        self.patches = []
        for a in appearances:
            portrait = read_image(faces / "face_recognition_examples" / a.portrait)
            face = max(detect(portrait), key=lambda f: f.area)
            self.patches.append((face_patch(portrait, face.box, a.height), face.box))

    def frame(self, k: int) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
        ox = round(40 + 40 * np.sin(k / 40))  # a slow pan
        oy = round(30 + 20 * np.sin(k / 57))
        frame = self.background[oy:oy + H, ox:ox + W].astype(np.float32)
        truth = []
        for a, (patch, box) in zip(self.appearances, self.patches, strict=True):
            if not a.first <= k <= a.last:
                continue
            u = (k - a.first) / max(1, a.last - a.first)
            cx = a.start[0] + u * (a.end[0] - a.start[0])
            cy = a.start[1] + u * (a.end[1] - a.start[1])
            paste(frame, patch[0], patch[1], cx, cy)
            w, h = (box[2] - box[0]) * patch[2], (box[3] - box[1]) * patch[2]
            truth.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        return np.ascontiguousarray(frame.clip(0, 255).astype(np.uint8)), truth
