"""Still images: decode one file, or walk a folder of them.

Decoding goes through OpenCV from bytes we read ourselves, so that a missing file, an
empty file, a truncated file and a file that is not an image each get their own
one-line message instead of OpenCV's silent None. Every bound is checked before the
decoder runs: a regular file no larger than `MAX_IMAGE_FILE_BYTES` (read through
`files.read_regular`, so FIFOs, devices and sockets are refused without blocking), and a
header-declared size within `MAX_PIXELS` and `MAX_DECODED_BYTES` (`image_header`), so a
small file that declares a huge picture is refused before anything is allocated.

JPEGs are decoded in colour mode, which applies the EXIF orientation (phone photos are
stored sideways); everything else is decoded unchanged, so that 16-bit depth and alpha
reach `as_rgb` intact.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mlsensors.errors import InputError, MlsensorsError, SourceError
from mlsensors.files import read_regular
from mlsensors.limits import MAX_IMAGE_FILE_BYTES
from mlsensors.source_names import IMAGE_SUFFIXES, list_images
from mlsensors.sources.base import Item, Source, UnreadableFile
from mlsensors.sources.frames import as_rgb
from mlsensors.sources.image_header import check_image_size, image_size
from mlsensors.types import Frame

_JPEG_SOS, _JPEG_EOI = b"\xff\xda", b"\xff\xd9"
_PNG_END = b"IEND\xaeB`\x82"


def image_format(head: bytes) -> str | None:
    """The image format announced by a file's first bytes, or None if not an image."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"BM"):
        return "BMP"
    if len(head) >= 2 and head[0:1] == b"P" and head[1:2] in b"123456":
        return "PNM"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    return None


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file into a C-contiguous RGB uint8 H×W×3 array.

    JPEG (EXIF orientation applied), PNG (alpha composited on black, 16-bit scaled to
    8-bit), PGM/PPM, BMP, TIFF and WebP. A file that cannot be opened raises
    SourceError; one that is not a regular file, too large (bytes or pixels, see
    `mlsensors.limits`), empty, truncated or not a decodable image raises InputError.
    Both messages name the path.
    """
    data = read_regular(path, MAX_IMAGE_FILE_BYTES, "image")
    return decode_image(data, str(path))


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (the body of `read_image`); `name` labels errors.

    The header's size is checked against the limits before the decoder runs."""
    if not data:
        raise InputError(f"{name}: empty file (0 bytes)")
    kind = image_format(data[:16])
    if kind is None:
        raise InputError(f"{name}: not an image (unrecognised content)")
    if kind == "JPEG" and data.find(_JPEG_EOI, max(data.rfind(_JPEG_SOS), 0)) < 0:
        raise InputError(f"{name}: truncated JPEG (no end-of-image marker after the data)")
    if kind == "PNG" and data.rfind(_PNG_END) < 0:
        raise InputError(f"{name}: truncated PNG (no IEND chunk)")
    try:
        check_image_size(image_size(data, kind))
    except InputError as error:
        raise InputError(f"{name}: {error}") from None
    flags = cv2.IMREAD_COLOR if kind == "JPEG" else cv2.IMREAD_UNCHANGED
    try:
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as error:
        detail = str(error).strip().splitlines()[-1]
        if "validateInputImageSize" in detail:  # OpenCV's own bound (limits.py) held
            detail = "its decoder found it larger than the pixels allowed"
        raise InputError(f"{name}: cannot decode {kind} image ({detail})") from None
    if decoded is None:
        raise InputError(f"{name}: corrupt or unsupported {kind} image (decoder failed)")
    try:
        return as_rgb(decoded, order="bgr")
    except InputError as error:
        raise InputError(f"{name}: {error}") from None


def file_problem(error: MlsensorsError, file: Path) -> str:
    """The one-line problem of a file's error, without the path it names."""
    text = str(error)
    for prefix in (f"{file}: ", f"image {file}: ", f"image {file} "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


class ImageSource(Source):
    """One image file as a source: one frame, or the same file again and again with loop.

    The file is decoded when the source is opened, so a bad file fails `open_source`
    with its message rather than later; with loop it is decoded afresh each time.
    """

    def __init__(self, path: str | os.PathLike[str], *, loop: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(path)
        self.loop = loop
        self._first: np.ndarray | None = read_image(self.path)

    def frames(self) -> Iterator[Item]:
        index = 0
        while not self.closed:
            image, self._first = self._first, None
            frame = Frame(
                read_image(self.path) if image is None else image,
                index,
                time.monotonic(),
                self.name,
            )
            del image
            yield frame
            del frame
            index += 1
            if not self.loop:
                return


class FolderSource(Source):
    """The images of a folder in name order; a file that fails is reported, not fatal.

    Each undecodable file yields an `UnreadableFile` (a SourceGap carrying the path and
    the one-line problem) and the walk goes on. With loop the folder is listed again at
    the start of every pass, so files dropped in while running are picked up.
    """

    def __init__(self, path: str | os.PathLike[str], *, loop: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(path)
        self.loop = loop
        if not list_images(self.path):
            raise SourceError(
                f"{self.path}: folder contains no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )

    def frames(self) -> Iterator[Item]:
        index = 0
        while not self.closed:
            decoded_any = False
            for file in list_images(self.path):
                if self.closed:
                    return
                try:
                    image = read_image(file)
                except MlsensorsError as error:
                    problem = file_problem(error, file)
                    yield UnreadableFile(time.monotonic(), f"{file}: {problem}", str(file), problem)
                    continue
                decoded_any = True
                frame = Frame(image, index, time.monotonic(), str(file))
                del image
                yield frame
                del frame
                index += 1
            if not self.loop:
                return
            if not decoded_any:
                raise SourceError(f"{self.path}: no image in the folder could be read")
