"""What a source name means, judged without reading any content.

`check_source("photos/")` says whether a name is the demo, a camera, a folder or a file,
and refuses, in one line, a name that can only fail: an empty one, a malformed camera,
a missing path, and a path that is not a folder or a regular file (a FIFO would hang
the reader, /dev/zero never ends, a socket cannot be read) or is larger than any source
may be, or a folder without image files. `list_images` lists a folder's image files by
name, bounded. Neither imports an image library nor reads content, so `serve` checks its
`--source` in the process that must never hold a picture; `sources.open_source` starts
with the same check.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mlsensors.errors import InputError, SourceError
from mlsensors.files import open_regular
from mlsensors.limits import MAX_FOLDER_ENTRIES, MAX_VIDEO_FILE_BYTES

IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".bmp",
        ".dib",
        ".pgm",
        ".ppm",
        ".pbm",
        ".pnm",
        ".tif",
        ".tiff",
        ".webp",
    }
)
"""Files a folder source considers images; anything else in a folder is skipped."""

CAMERA = re.compile(r"camera:(\d+)|/dev/video(\d+)")
"""`camera:N` or `/dev/videoN`; group 1 or 2 is N."""


def check_source(spec: str | os.PathLike[str]) -> str:
    """What `spec` names: "demo", "camera", "folder" or "file"; see the module docstring.

    Raises SourceError, or InputError for a path that is not a folder or regular file or
    is too large, with a one-line message naming the problem.
    """
    text = os.fspath(spec)
    if not text.strip():
        raise SourceError("empty source name (use demo, camera:N or a path)")
    if text == "demo":
        return "demo"
    if CAMERA.fullmatch(text):
        return "camera"
    if text.startswith("camera"):
        raise SourceError(f"bad camera {text!r}: write camera:N with N a number, e.g. camera:0")
    path = Path(text)
    if path.is_dir():
        if not list_images(path):
            raise SourceError(f"{path}: folder contains no image files "
                              f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return "folder"
    if not path.exists() and not path.is_symlink():
        raise SourceError(f"{text}: no such file or folder (or use demo or camera:N)")
    os.close(open_regular(path, MAX_VIDEO_FILE_BYTES, "source"))
    return "file"


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name.

    Hidden files, subfolders, anything that is not a regular file (FIFOs, devices,
    sockets, links to them) and files whose suffix is not an image suffix are skipped:
    a folder of photos often holds labels, notes or thumbnails databases too. A folder
    with more than `MAX_FOLDER_ENTRIES` entries is refused before it is all listed.
    """
    found: list[Path] = []
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries, start=1):
                if count > MAX_FOLDER_ENTRIES:
                    raise InputError(f"{folder}: folder has more than {MAX_FOLDER_ENTRIES} "
                                     "entries; give a smaller one")
                if entry.name.startswith(".") \
                        or os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    if entry.is_file():  # follows links; False for FIFOs and devices
                        found.append(Path(entry.path))
                except OSError:
                    continue
    except OSError as error:
        raise SourceError(f"{folder}: cannot list folder ({error.strerror or error})") from None
    return sorted(found)
