"""SSD anchors for BlazeFace, generated exactly as MediaPipe's SsdAnchorsCalculator does.

The model regresses each face relative to a fixed grid of anchor centres. With
`fixed_anchor_size` every anchor is 1×1, so only the centres matter: for each group of
consecutive layers with equal stride, a feature map of ceil(input / stride) cells,
walked y (outer), then x, then the group's anchors, each centred at
((x + offset) / W, (y + offset) / H).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class AnchorOptions:
    """The subset of MediaPipe's SsdAnchorsCalculatorOptions that BlazeFace uses."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    """Anchors per cell per layer: 1 aspect ratio, plus 1 if interpolated_scale_aspect_ratio."""
    anchor_offset: float = 0.5


SHORT_RANGE = AnchorOptions(input_size=128, strides=(8, 16, 16, 16), anchors_per_layer=2)
FULL_RANGE = AnchorOptions(input_size=192, strides=(4,), anchors_per_layer=1)


def generate_anchors(options: AnchorOptions) -> np.ndarray:
    """Anchor centres as a float32 array of shape (N, 2): x_center, y_center in [0, 1]."""
    chunks = []
    layer = 0
    strides = options.strides
    while layer < len(strides):
        stride = strides[layer]
        same = 0
        while layer < len(strides) and strides[layer] == stride:
            same += 1
            layer += 1
        size = math.ceil(options.input_size / stride)
        per_cell = same * options.anchors_per_layer
        centres = (np.arange(size, dtype=np.float64) + options.anchor_offset) / size
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        chunks.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(chunks).astype(np.float32)
