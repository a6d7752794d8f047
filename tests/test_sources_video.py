"""Video files read for real; the camera's drop-out and retry logic with a fake capture."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from mlsensors.errors import SourceError
from mlsensors.sources import CameraSource, ImageSource, VideoSource, open_source
from mlsensors.sources.base import Pacer
from mlsensors.types import Frame, SourceGap

LEVELS = [20 * k + 10 for k in range(10)]


def _write_video(path: Path, levels=LEVELS, fourcc: str = "MJPG") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (64, 48))
    assert writer.isOpened()
    for level in levels:
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, :, 2] = level  # red, in OpenCV's BGR order
        writer.write(frame)
    writer.release()
    return path


def _red(frame: Frame) -> int:
    return round(float(frame.image[:, :, 0].mean()))


def test_video_file_frames_in_order(tmp_path):
    path = _write_video(tmp_path / "clip.avi")
    with open_source(path) as source:
        assert isinstance(source, VideoSource) and source.fps == pytest.approx(10.0)
        frames = list(source.frames())
    assert [frame.index for frame in frames] == list(range(10))
    assert all(
        frame.image.shape == (48, 64, 3) and frame.image.flags.c_contiguous for frame in frames
    )
    assert all(frame.origin == str(path) for frame in frames)
    assert [_red(frame) for frame in frames] == pytest.approx(LEVELS, abs=6)
    assert all(frame.image[:, :, 1:].max() < 12 for frame in frames)  # RGB, not BGR


def test_video_loop_starts_over_and_counts_on(tmp_path):
    path = _write_video(tmp_path / "clip.avi", levels=[30, 130, 230])
    with open_source(path, loop=True) as source:
        stream = source.frames()
        frames = [next(stream) for _ in range(8)]
    assert [frame.index for frame in frames] == list(range(8))
    assert [_red(frame) for frame in frames] == pytest.approx(
        [30, 130, 230, 30, 130, 230, 30, 130], abs=6
    )


def test_kind_is_decided_by_content_not_suffix(tmp_path, data_dir):
    video = _write_video(tmp_path / "clip.avi")
    disguised = tmp_path / "clip.bin"
    disguised.write_bytes(video.read_bytes())
    photo = tmp_path / "photo.avi"
    photo.write_bytes((data_dir / "faces/face_recognition_examples/obama-240p.jpg").read_bytes())
    with open_source(disguised) as source:
        assert isinstance(source, VideoSource)
    with open_source(photo) as source:
        assert isinstance(source, ImageSource)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("broken.avi", b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 64, "cannot open as a video"),
        ("text.mp4", b"just some text\n", "cannot open as a video"),
        ("notes.txt", b"just some text\n", "neither an image nor a video"),
        ("empty.dat", b"", "empty file"),
    ],
)
def test_bad_video_files_raise_source_error(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError) as caught:
        open_source(path)
    assert str(caught.value).startswith(str(path)) and words in str(caught.value)


class _EmptyCapture:
    def isOpened(self):
        return True

    def read(self):
        return False, None

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return True

    def release(self):
        pass


def test_video_that_opens_but_has_no_frames_is_an_error(tmp_path):
    path = tmp_path / "hollow.avi"
    path.write_bytes(b"x")
    source = VideoSource(path, capture_factory=lambda _: _EmptyCapture())
    with pytest.raises(SourceError, match="no frame could be decoded"):
        list(source.frames())


class _World:
    """A fake camera on a fake clock: it can be unplugged and plugged back in."""

    def __init__(self) -> None:
        self.now = 100.0
        self.present = True
        self.opens: list[float] = []
        self.counter = 0
        self.open_captures = 0

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        assert 0 < seconds <= 0.5 + 1e-9  # never waits longer than the heartbeat
        self.now += seconds

    def open(self, index: int) -> _FakeCamera:
        assert index == 3
        self.opens.append(self.now)
        return _FakeCamera(self)


class _FakeCamera:
    def __init__(self, world: _World) -> None:
        self.world = world
        self.alive = world.present
        self.released = False
        world.open_captures += 1

    def isOpened(self):
        return self.alive

    def read(self):
        assert not self.released
        if not (self.alive and self.world.present):
            self.alive = False  # a camera that went away stays dead until reopened
            return False, None
        self.world.counter += 1
        self.world.now += 0.05
        image = np.zeros((4, 6, 3), np.uint8)
        image[:, :, 0] = self.world.counter  # blue channel in BGR
        return True, image

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return True

    def release(self):
        if not self.released:
            self.world.open_captures -= 1
        self.released = True


def _camera(world: _World) -> CameraSource:
    return CameraSource(3, capture_factory=world.open, clock=world.clock, wait=world.wait)


def test_camera_drop_out_yields_gaps_retries_with_backoff_and_resumes():
    world = _World()
    source = _camera(world)
    stream = source.frames()
    before = [next(stream) for _ in range(3)]
    assert [f.index for f in before] == [0, 1, 2]
    assert [int(f.image[0, 0, 2]) for f in before] == [1, 2, 3]  # BGR → RGB, all new

    world.present = False
    lost_at = world.now
    gaps = []
    while world.now < lost_at + 20:
        item = next(stream)
        assert isinstance(item, SourceGap), "a frame while the camera is gone"
        gaps.append(item)
    world.present = True
    items = []
    while not isinstance(item := next(stream), Frame):
        items.append(item)
    assert all(isinstance(gap, SourceGap) for gap in items)
    gaps += items

    # Reopen attempts after 0.5, 1, 2, 4, 8, 8 … seconds (plus the time reads took).
    attempts = [t - lost_at for t in world.opens[1:]]
    delays = np.diff([0.0, *attempts])
    assert delays[:6] == pytest.approx([0.5, 1, 2, 4, 8, 8], abs=0.06)
    assert "camera:3 stopped delivering pictures" in gaps[0].reason
    assert max(np.diff([g.timestamp for g in gaps])) <= 0.5 + 1e-9  # heartbeat

    # Back: new pictures only, indices continue, and the backoff starts again at 0.5 s.
    assert item.index == 3 and int(item.image[0, 0, 2]) > 3
    following = next(stream)
    assert following.index == 4 and int(following.image[0, 0, 2]) > int(item.image[0, 0, 2])
    world.present = False
    dropped_again = world.now
    opens_before = len(world.opens)
    while len(world.opens) == opens_before:
        assert isinstance(next(stream), SourceGap)
    assert world.opens[-1] - dropped_again == pytest.approx(0.5, abs=0.06)

    source.close()
    assert list(stream) == []
    assert world.open_captures == 0


def test_camera_that_cannot_open_or_gives_nothing_is_a_clear_error():
    world = _World()
    world.present = False
    with pytest.raises(SourceError, match=r"camera:3: cannot open the camera .*/dev/video3"):
        _camera(world)

    class Silent(_EmptyCapture):
        released = False

        def release(self):
            self.released = True

    silent = Silent()
    with pytest.raises(SourceError, match="camera:0"):
        CameraSource(0, capture_factory=lambda _: silent)
    assert silent.released


def test_camera_missing_device_for_real():
    with pytest.raises(SourceError, match="camera:57"):
        open_source("camera:57")


def test_close_from_another_thread_ends_a_retry_wait_at_once():
    world = _World()
    source = CameraSource(3, capture_factory=world.open, retry_initial=30.0, heartbeat=30.0)
    stream = source.frames()
    assert isinstance(next(stream), Frame)
    world.present = False
    assert isinstance(next(stream), SourceGap)  # now about to wait 30 s for the retry
    rest: list = []
    consumer = threading.Thread(target=lambda: rest.extend(stream))
    consumer.start()
    threading.Timer(0.05, source.close).start()
    consumer.join(timeout=5)
    assert not consumer.is_alive(), "close() did not wake the waiting source"
    assert all(isinstance(item, SourceGap) for item in rest)


def test_pacer_spaces_frames_and_does_not_catch_up():
    now = [0.0]
    waits: list[float] = []

    def wait(seconds):
        waits.append(round(seconds, 6))
        now[0] += seconds

    pace = Pacer(10.0, wait, clock=lambda: now[0])
    pace()
    pace()
    now[0] += 0.03
    pace()
    now[0] += 1.0  # the consumer stalled: start afresh instead of bursting
    pace()
    pace()
    assert waits == [0.1, 0.07, 0.1]
    Pacer(None, wait)()
    assert len(waits) == 3
