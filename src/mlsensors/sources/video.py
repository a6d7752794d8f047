"""Moving pictures: video files and cameras, both read through cv2.VideoCapture.

A video file is bounded before it is decoded: a regular file (FIFOs, devices and
sockets never reach FFmpeg) no larger than `MAX_VIDEO_FILE_BYTES`, whose frames, as
the container declares them once it is opened and before the first frame is decoded,
have at most `MAX_PIXELS` pixels (a 64-byte GIF can declare a 16000×16000 canvas and
decode into 2.5 GB); each decoded frame is held to the same bound, in case the size
changes mid-stream. Its length costs time, not memory: frames come one at a time.

A camera is the one source that can vanish mid-run (a loose USB cable, a driver
reset). Then the source yields a SourceGap, never the last good frame, so the sensor
reports no faces instead of stale ones, and it retries opening the camera with
exponential backoff until it comes back. The capture constructor, the clock and the
wait are injectable so that this logic is tested without hardware.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import cv2

from mlsensors.errors import InputError, SourceError
from mlsensors.files import open_regular
from mlsensors.limits import MAX_PIXELS, MAX_VIDEO_FILE_BYTES
from mlsensors.sources.base import Item, Pacer, Source
from mlsensors.sources.frames import as_rgb
from mlsensors.types import Frame, SourceGap

VIDEO_SUFFIXES = frozenset(
    {
        ".avi",
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".mpg",
        ".mpeg",
        ".ts",
        ".wmv",
        ".flv",
        ".ogv",
        ".3gp",
        ".mjpeg",
        ".mjpg",
        ".gif",
        ".h264",
        ".y4m",
    }
)


class Capture(Protocol):
    """The part of cv2.VideoCapture a source uses (a fake one stands in for it in tests)."""

    def isOpened(self) -> bool: ...  # OpenCV's name
    def read(self) -> tuple[bool, Any]: ...
    def set(self, prop: int, value: float) -> bool: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


def video_format(head: bytes) -> str | None:
    """The container announced by a file's first bytes, or None if not a known video."""
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI"
    if head[4:8] == b"ftyp":
        return "MP4/MOV"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "MPEG"
    if head.startswith(b"FLV"):
        return "FLV"
    if head.startswith(b"OggS"):
        return "Ogg"
    if head.startswith(b"YUV4MPEG2"):
        return "Y4M"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    return None


def _read_frame(capture: Capture) -> Any | None:
    ok, image = capture.read()
    return image if ok and image is not None and getattr(image, "size", 0) else None


class _CaptureSource(Source):
    """Holds one capture; reads and releases under a lock so close() works from any thread."""

    def __init__(self) -> None:
        super().__init__()
        self._capture: Capture | None = None
        self._lock = threading.Lock()

    def _read(self) -> Any | None:
        with self._lock:
            return None if self._capture is None else _read_frame(self._capture)

    def _release(self) -> None:
        with self._lock:
            capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def close(self) -> None:
        super().close()
        self._release()


class VideoSource(_CaptureSource):
    """A video file, frame by frame; with loop it starts over at the end.

    With realtime the frames are paced at the file's frame rate (for serving a demo
    from a recording); otherwise they come as fast as they decode.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        loop: bool = False,
        realtime: bool = False,
        capture_factory: Callable[[str], Capture] | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(path)
        self.loop = loop
        self.realtime = realtime
        self._factory = capture_factory or _open_file_capture
        self._capture = self._open()
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)

    def _open(self) -> Capture:
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such video file")
        os.close(open_regular(self.path, MAX_VIDEO_FILE_BYTES, "video"))
        capture = self._factory(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.path}: cannot open as a video (unsupported or corrupt)")
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        try:
            self._check_size(width, height)
        except InputError:
            capture.release()
            raise
        return capture

    def _check_size(self, width: int, height: int) -> None:
        if width * height > MAX_PIXELS:
            raise InputError(
                f"{self.path}: {width}×{height} video frames are {width * height / 1e6:.1f} "
                f"megapixels, more than the {MAX_PIXELS / 1e6:g} allowed (scale it down)")

    def frames(self) -> Iterator[Item]:
        pace = Pacer(self.fps if self.realtime else None, self._closed.wait)
        index = 0
        try:
            while not self.closed:
                if self._capture is None:
                    self._capture = self._open()
                pass_start = index
                while not self.closed:
                    pace()
                    raw = self._read()
                    if raw is None:
                        break
                    self._check_size(raw.shape[1], raw.shape[0])
                    frame = Frame(as_rgb(raw, order="bgr"), index, time.monotonic(), self.name)
                    del raw  # while suspended, only the frame handed out stays alive
                    yield frame
                    del frame
                    index += 1
                self._release()
                if index == pass_start and not self.closed:
                    raise SourceError(f"{self.path}: no frame could be decoded from the video")
                if not self.loop:
                    return
        finally:
            self._release()


def _open_file_capture(path: str) -> Capture:
    return cv2.VideoCapture(path)


class _NoCapture:
    """Stands for a camera whose device node is absent (OpenCV would only print warnings)."""

    def isOpened(self) -> bool:  # OpenCV's name
        return False

    def release(self) -> None:
        pass


def _open_camera_capture(index: int) -> Capture:
    if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
        return _NoCapture()  # type: ignore[return-value]
    capture = cv2.VideoCapture(index)
    if capture.isOpened():
        # One buffered frame: lowest latency, and no backlog of old pictures in the driver.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return capture


class CameraSource(_CaptureSource):
    """A camera (`camera:N`, /dev/videoN on Linux), retried with backoff if it drops out.

    Opening fails with SourceError unless the camera opens and delivers a first frame.
    When a read fails later the capture is released and the source yields SourceGap
    items (at least every `heartbeat` seconds, so the consumer stays responsive) while
    it tries to reopen after `retry_initial` seconds, doubling up to `retry_max`. The
    first good frame after a reopen resets the delay. No frame is ever repeated.
    """

    def __init__(
        self,
        index: int = 0,
        *,
        capture_factory: Callable[[int], Capture] | None = None,
        retry_initial: float = 0.5,
        retry_max: float = 8.0,
        heartbeat: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        super().__init__()
        self.index = index
        self.name = f"camera:{index}"
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.heartbeat = heartbeat
        self._factory = capture_factory or _open_camera_capture
        self._clock = clock
        self._wait = wait or self._closed.wait
        self._first = self._try_open()
        if self._first is None:
            raise SourceError(
                f"camera:{index}: cannot open the camera or it delivers no picture "
                f"(is /dev/video{index} present, free and readable?)"
            )

    def _try_open(self) -> Any | None:
        """Open the capture and read one frame; None (and nothing held) on failure."""
        self._release()
        try:
            capture = self._factory(self.index)
        except (cv2.error, OSError):
            return None
        if not capture.isOpened():
            capture.release()
            return None
        image = _read_frame(capture)
        if image is None:
            capture.release()
            return None
        with self._lock:
            self._capture = capture
        return image

    def frames(self) -> Iterator[Item]:
        index = 0
        raw, self._first = self._first, None
        try:
            while not self.closed:
                if raw is None:
                    raw = self._read()
                if raw is None:
                    raw = yield from self._reconnect()
                    continue
                frame = Frame(as_rgb(raw, order="bgr"), index, self._clock(), self.name)
                raw = None  # while suspended, only the frame handed out stays alive
                yield frame
                del frame
                index += 1
        finally:
            self._release()

    def _reconnect(self) -> Iterator[SourceGap]:
        """Yield gaps until the camera is back; return its first frame (None if closed)."""
        self._release()
        delay = self.retry_initial
        lost = f"camera:{self.index} stopped delivering pictures"
        while not self.closed:
            attempt_at = self._clock() + delay
            yield SourceGap(self._clock(), f"{lost}; retrying in {delay:g} s")
            while not self.closed and (remaining := attempt_at - self._clock()) > 0:
                self._wait(min(remaining, self.heartbeat))
                if attempt_at - self._clock() > 0:
                    yield SourceGap(self._clock(), f"{lost}; retrying")
            if self.closed:
                return None
            image = self._try_open()
            if image is not None:
                return image
            delay = min(delay * 2, self.retry_max)
        return None

    def close(self) -> None:
        super().close()
        self._first = None
