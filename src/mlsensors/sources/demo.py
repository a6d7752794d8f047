"""The built-in demo: a moving astronaut, so mlsensors shows something without a camera.

Frames are synthesised at run time from the astronaut photograph that scikit-image
ships (Eileen Collins, NASA, public domain); nothing is recorded or bundled. The
picture drifts, zooms in and out, slides out of the frame to the right, stays away for
about three seconds and comes back, so face presence visibly changes.

Every frame is a pure function of its index (`render(index)`), and the face's place in
it is known from the geometry (`face_box`, `face_fraction`, `face_visible`), so tests
can say exactly which frames must and must not contain a face. At 640×480 and 15 fps
the schedule repeats every 180 frames (12 s); see docs/sources.md for the frame ranges.
"""

from __future__ import annotations

import importlib.util
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mlsensors.errors import SourceError
from mlsensors.sources.base import Item, Pacer, Source
from mlsensors.types import Box, Frame

FACE_BOX: Box = (150.0, 15.0, 300.0, 185.0)
"""The astronaut's head (hair to chin) in pixels of the 512×512 photograph."""

_KEYFRAMES: tuple[tuple[int, float, float, float], ...] = (
    # frame in period, head centre x and y (fractions of the output), zoom
    (0, 0.50, 0.42, 1.00),
    (30, 0.32, 0.46, 0.70),  # steps back and to the left
    (60, 0.62, 0.40, 1.45),  # comes close
    (80, 0.70, 0.42, 1.00),
    (100, 1.40, 0.42, 1.00),  # walks out to the right
    (130, 1.40, 0.42, 1.00),  # stays away
    (150, 0.72, 0.45, 0.85),  # comes back
    (180, 0.50, 0.42, 1.00),  # = frame 0 of the next period
)


def astronaut_path() -> Path:
    """Where scikit-image keeps astronaut.png, found without importing scikit-image."""
    spec = importlib.util.find_spec("skimage")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "data" / "astronaut.png"
        if candidate.is_file():
            return candidate
    raise SourceError(
        "the demo needs astronaut.png from scikit-image, which was not found (install scikit-image)"
    )


class DemoSource(Source):
    """An endless synthetic camera showing the astronaut; deterministic per frame index.

    With realtime the frames are paced at `fps` (15 by default, like a cheap webcam);
    without it they come as fast as they render (about a millisecond each), which is
    what tests want. `PERIOD` frames make one cycle of the schedule.
    """

    PERIOD = _KEYFRAMES[-1][0]
    FPS = 15.0

    def __init__(
        self, width: int = 640, height: int = 480, *, realtime: bool = False, fps: float = FPS
    ) -> None:
        super().__init__()
        if width < 16 or height < 16:
            raise SourceError(f"demo frame size {width}×{height} is too small (minimum 16×16)")
        self.name = "demo"
        self.width, self.height = width, height
        self.realtime, self.fps = realtime, fps
        picture = cv2.imread(str(astronaut_path()), cv2.IMREAD_COLOR)
        if picture is None:
            raise SourceError("the demo picture astronaut.png could not be decoded")
        self._picture = cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)
        self._background = _backdrop(width, height)

    def frames(self) -> Iterator[Item]:
        pace = Pacer(self.fps if self.realtime else None, self._closed.wait)
        index = 0
        while not self.closed:
            pace()
            yield Frame(self.render(index), index, time.monotonic(), self.name)
            index += 1

    def pose(self, index: int) -> tuple[float, float, float]:
        """Scale and translation (s, tx, ty) that place the photograph in frame `index`."""
        t = index % self.PERIOD
        for (t0, *a), (t1, *b) in itertools.pairwise(_KEYFRAMES):
            if t0 <= t < t1:
                u = (t - t0) / (t1 - t0)
                u = u * u * (3.0 - 2.0 * u)  # ease in and out: no jerks at keyframes
                cx, cy, zoom = (p + (q - p) * u for p, q in zip(a, b, strict=True))
                break
        scale = zoom * self.height / 512.0
        head_x = (FACE_BOX[0] + FACE_BOX[2]) / 2.0
        head_y = (FACE_BOX[1] + FACE_BOX[3]) / 2.0
        return scale, cx * self.width - scale * head_x, cy * self.height - scale * head_y

    def render(self, index: int) -> np.ndarray:
        """Frame `index` as RGB uint8 height×width×3: a pure function of the index."""
        scale, tx, ty = self.pose(index)
        matrix = np.array([[scale, 0.0, tx], [0.0, scale, ty]])
        image = self._background.copy()
        cv2.warpAffine(
            self._picture,
            matrix,
            (self.width, self.height),
            dst=image,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT,
        )
        return image

    def face_box(self, index: int) -> Box:
        """The head's box in frame `index`, in output pixels (may lie partly outside)."""
        scale, tx, ty = self.pose(index)
        x0, y0, x1, y1 = FACE_BOX
        return (scale * x0 + tx, scale * y0 + ty, scale * x1 + tx, scale * y1 + ty)

    def face_fraction(self, index: int) -> float:
        """How much of the head's box lies inside frame `index`: 0 (gone) to 1 (all in)."""
        x0, y0, x1, y1 = self.face_box(index)
        inside_w = max(0.0, min(x1, self.width) - max(x0, 0.0))
        inside_h = max(0.0, min(y1, self.height) - max(y0, 0.0))
        return (inside_w * inside_h) / ((x1 - x0) * (y1 - y0))

    def face_visible(self, index: int) -> bool:
        """True when the whole head is inside frame `index` (a face must be found)."""
        return self.face_fraction(index) >= 1.0


def _backdrop(width: int, height: int) -> np.ndarray:
    """A plain studio-grey vertical gradient for where the photograph does not reach."""
    ramp = np.linspace(70.0, 35.0, height, dtype=np.float32)[:, np.newaxis, np.newaxis]
    tint = np.array([1.0, 1.05, 1.15], dtype=np.float32)
    row = np.broadcast_to(ramp * tint, (height, width, 3))
    return np.ascontiguousarray(row.astype(np.uint8))
