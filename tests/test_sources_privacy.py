"""A source keeps no picture but the one it last handed out (the privacy promise)."""

from __future__ import annotations

import weakref

import cv2
import numpy as np
import pytest

from mlsensors.sources import CameraSource, open_source
from mlsensors.types import Frame


def _check_only_latest_alive(stream, steps: int = 4) -> None:
    previous = None
    for _ in range(steps):
        frame = next(stream)
        assert isinstance(frame, Frame)
        if previous is not None:
            assert previous() is None, "an earlier picture is still referenced"
        previous = weakref.ref(frame.image)
        del frame


@pytest.mark.parametrize("kind", ["demo", "folder", "video", "image"])
def test_sources_drop_each_picture_once_the_consumer_does(tmp_path, kind):
    picture = np.full((24, 32, 3), 90, np.uint8)
    if kind == "folder":
        for name in "abc":
            cv2.imwrite(str(tmp_path / f"{name}.png"), picture)
        spec = tmp_path
    elif kind == "video":
        spec = tmp_path / "clip.avi"
        writer = cv2.VideoWriter(str(spec), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
        for _ in range(3):
            writer.write(picture)
        writer.release()
    elif kind == "image":
        spec = tmp_path / "one.png"
        cv2.imwrite(str(spec), picture)
    else:
        spec = "demo"
    with open_source(spec, loop=True) as source:
        _check_only_latest_alive(source.frames())


def test_camera_keeps_neither_old_frames_nor_raw_captures():
    raws: list[weakref.ref] = []

    class Camera:
        def isOpened(self):
            return True

        def read(self):
            raw = np.zeros((4, 6, 3), np.uint8)
            raws.append(weakref.ref(raw))
            return True, raw

        def set(self, prop, value):
            return True

        def get(self, prop):
            return 0.0

        def release(self):
            pass

    with CameraSource(0, capture_factory=lambda _: Camera()) as source:
        stream = source.frames()
        _check_only_latest_alive(stream)
        frame = next(stream)
        assert all(ref() is None for ref in raws), "a raw capture buffer is still held"
        del frame
