"""Where pictures come from: image files, folders, video files, cameras, the demo.

`open_source(spec)` turns what a user typed into a Source; every Source yields
`Frame` (RGB uint8, C-contiguous) or `SourceGap` items one at a time, never queueing
pictures. `read_image` and `as_rgb` are the two ways a single picture enters mlsensors
(from a file, from a numpy array).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from mlsensors.errors import SourceError
from mlsensors.files import read_regular
from mlsensors.limits import MAX_VIDEO_FILE_BYTES
from mlsensors.source_names import CAMERA, check_source
from mlsensors.sources.base import Item, Source, UnreadableFile
from mlsensors.sources.demo import DemoSource
from mlsensors.sources.frames import as_rgb
from mlsensors.sources.images import (
    IMAGE_SUFFIXES,
    FolderSource,
    ImageSource,
    decode_image,
    image_format,
    read_image,
)
from mlsensors.sources.video import VIDEO_SUFFIXES, CameraSource, VideoSource, video_format

__all__ = [
    "CameraSource",
    "DemoSource",
    "FolderSource",
    "ImageSource",
    "Item",
    "Source",
    "UnreadableFile",
    "VideoSource",
    "as_rgb",
    "check_source",
    "decode_image",
    "find_camera",
    "open_source",
    "read_image",
]


def open_source(
    spec: str | os.PathLike[str] | None = None, *, loop: bool = False, realtime: bool = False
) -> Source:
    """Open the source a user named.

    - None: the first camera that opens and delivers a picture, else the demo.
    - "demo": the built-in demo (a path that happens to be called demo: use ./demo).
    - "camera:N" or "/dev/videoN": camera N.
    - a folder: its image files in name order (see FolderSource for unreadable files).
    - a file: an image or a video, decided by its content, else by its suffix.

    `loop` repeats files, folders and videos forever (cameras and the demo never end);
    `realtime` paces the demo at 15 fps and videos at their own frame rate.
    Raises SourceError (or InputError for a file that is not a regular file, is over
    a limit of `mlsensors.limits` or cannot be decoded) with a one-line message naming
    the problem.
    """
    if spec is None:
        return find_camera() or DemoSource(realtime=realtime)
    kind = check_source(spec)
    text = os.fspath(spec)
    if kind == "demo":
        return DemoSource(realtime=realtime)
    if kind == "camera":
        match = CAMERA.fullmatch(text)
        assert match is not None
        return CameraSource(int(match.group(1) or match.group(2)))
    if kind == "folder":
        return FolderSource(Path(text), loop=loop)
    return _open_file(Path(text), loop=loop, realtime=realtime)


def _open_file(path: Path, *, loop: bool, realtime: bool) -> Source:
    head = read_regular(path, MAX_VIDEO_FILE_BYTES, "source", head=32)
    suffix = path.suffix.lower()
    if image_format(head) or (not video_format(head) and suffix in IMAGE_SUFFIXES):
        return ImageSource(path, loop=loop)
    if video_format(head) or suffix in VIDEO_SUFFIXES:
        return VideoSource(path, loop=loop, realtime=realtime)
    if not head:
        raise SourceError(f"{path}: empty file")
    raise SourceError(f"{path}: neither an image nor a video (unrecognised content)")


def find_camera() -> CameraSource | None:
    """The first /dev/videoN camera that opens and delivers a picture, or None.

    Only numbers that exist under /dev are tried, so a machine without cameras answers
    at once (and OpenCV prints no warnings). Devices that are not cameras (codecs,
    metadata nodes) fail to deliver a picture and are passed over.
    """
    numbers = sorted(
        int(name.removeprefix("/dev/video"))
        for name in glob.glob("/dev/video*")
        if name.removeprefix("/dev/video").isdigit()
    )
    for number in numbers:
        try:
            return CameraSource(number)
        except SourceError:
            continue
    return None
