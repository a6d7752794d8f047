"""How much mlsensors reads from a file a user named: the bounds, checked before reading.

A user-named input can be hostile or simply wrong: a FIFO that never answers, a device
that never ends (/dev/zero), a folder of a million files, or a small file that decodes
into gigabytes (an 11.8 MB PNG that declares 30000×30000 pixels). Every such input is
checked against these bounds before it is read or decoded: file type and byte size on
the open descriptor (`files.read_regular`), the pixel count from the image header, the
size of a video's frames from the container before the first frame is decoded.

The figures are sized for the smallest machine mlsensors runs on, a Raspberry Pi with
1 GB of memory, whose sealed sensing process has 768 MiB of address space, about 380
MiB of it free once the models are loaded: the largest image allowed decodes within
about 320 MiB (measured in tests/test_sources_limits.py; docs/sources.md has the table).
"""

from __future__ import annotations

import os

MAX_IMAGE_FILE_BYTES = 64 << 20
"""An image file larger than this is refused before it is read (64 MiB: a 50-megapixel
photo as JPEG or PNG is well under it)."""

MAX_PIXELS = 50_000_000
"""Width × height of an image or video frame (50 megapixels: an 8000×6000 photo)."""

MAX_DECODED_BYTES = 160 << 20
"""Bytes the decoder may hold for one image (its output, width × height × channels ×
bytes per sample, and a progressive JPEG's coefficients, from the header): 50
megapixels of 8-bit colour, 41 with alpha, 20 at 16 bits with alpha. With the RGB copy
made after decoding, the peak stays near 300 MiB: what the sealed process can hold."""

MAX_VIDEO_FILE_BYTES = 16 << 30
"""A video file larger than this is refused (16 GiB); a video is decoded one frame at a
time, so its length costs time, not memory."""

MAX_FOLDER_ENTRIES = 100_000
"""A folder source lists at most this many entries (its names alone would otherwise
take memory without bound)."""


def apply_decoder_limits() -> None:
    """Give OpenCV's image decoders the same pixel bound, as a second line behind the
    header check (a decoder that reads the header differently still cannot allocate
    more). OpenCV reads it when it is first imported, so this runs when mlsensors is."""
    name = "OPENCV_IO_MAX_IMAGE_PIXELS"
    current = os.environ.get(name, "")
    if not current.isdigit() or int(current) > MAX_PIXELS:
        os.environ[name] = str(MAX_PIXELS)
