"""The astronaut demo: deterministic frames, a face that moves, zooms, leaves and returns."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from mlsensors.sources import DemoSource, open_source
from mlsensors.sources.demo import FACE_BOX, astronaut_path
from mlsensors.types import Frame


@pytest.fixture(scope="module")
def demo() -> DemoSource:
    return DemoSource()


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    runs, start = [], None
    for index, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            runs.append((start, index - 1))
            start = None
    return runs


def test_frames_are_a_pure_function_of_the_index(demo):
    other = DemoSource()
    for index in (0, 17, 95, 151):
        image = demo.render(index)
        assert image.shape == (480, 640, 3) and image.dtype == np.uint8
        assert image.flags.c_contiguous
        assert np.array_equal(image, other.render(index))
        assert np.array_equal(image, demo.render(index + 3 * DemoSource.PERIOD))
    assert not np.array_equal(demo.render(0), demo.render(1))


def test_source_yields_numbered_frames_equal_to_render():
    with open_source("demo") as source:
        assert isinstance(source, DemoSource) and source.name == "demo"
        stream = source.frames()
        frames = [next(stream) for _ in range(4)]
    assert all(isinstance(frame, Frame) for frame in frames)
    assert [frame.index for frame in frames] == [0, 1, 2, 3]
    assert all(frame.origin == "demo" for frame in frames)
    assert np.array_equal(frames[3].image, source.render(3))
    assert frames[0].timestamp <= frames[3].timestamp


def test_schedule_documented_in_docs_sources_md(demo):
    period = range(DemoSource.PERIOD)
    visible = _runs([demo.face_visible(i) for i in period])
    gone = _runs([demo.face_fraction(i) == 0.0 for i in period])
    assert visible == [(0, 86), (144, 179)]
    assert gone == [(92, 139)]  # 48 frames: 3.2 s at 15 fps


def test_face_moves_and_zooms_while_in_view(demo):
    boxes = np.array([demo.face_box(i) for i in range(87)])
    centres_x = (boxes[:, 0] + boxes[:, 2]) / 2
    widths = boxes[:, 2] - boxes[:, 0]
    assert centres_x.max() - centres_x.min() > 200
    assert widths.max() / widths.min() > 2.0


@pytest.mark.parametrize("index", [0, 30, 60, 86, 160])
def test_face_box_matches_the_pixels(demo, index):
    """Cut the head out of the frame where the geometry says it is: it is the photo's head."""
    x0, y0, x1, y1 = (round(v) for v in demo.face_box(index))
    crop = demo.render(index)[y0:y1, x0:x1]
    photo = cv2.cvtColor(cv2.imread(str(astronaut_path())), cv2.COLOR_BGR2RGB)
    fx0, fy0, fx1, fy1 = (int(v) for v in FACE_BOX)
    head = cv2.resize(photo[fy0:fy1, fx0:fx1], (crop.shape[1], crop.shape[0]))
    assert np.abs(crop.astype(int) - head).mean() < 12


def test_an_independent_detector_sees_the_face_come_and_go(demo):
    """dlib's HOG detector (not ours) finds the head exactly when the schedule says so."""
    dlib = pytest.importorskip("dlib")
    detector = dlib.get_frontal_face_detector()
    for index in (0, 30, 60, 80, 92, 100, 120, 139, 150, 170):
        found = detector(demo.render(index), 0)
        x0, y0, x1, y1 = demo.face_box(index)
        on_head = [r for r in found if x0 <= r.center().x <= x1 and y0 <= r.center().y <= y1]
        if demo.face_visible(index):
            assert len(on_head) == 1, f"frame {index}: head not found"
        else:
            assert demo.face_fraction(index) == 0.0
            assert len(found) == 0, f"frame {index}: a face where none should be"


def test_demo_does_not_import_scikit_image():
    code = (
        "import sys; from mlsensors.sources import DemoSource; DemoSource().render(0); "
        "print('skimage' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_other_sizes_scale_the_scene():
    small = DemoSource(320, 240)
    assert small.render(0).shape == (240, 320, 3)
    assert small.face_visible(0) and small.face_fraction(110) == 0.0
