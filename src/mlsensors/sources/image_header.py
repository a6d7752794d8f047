"""An image's size from its header, read before anything is decoded.

A decoder allocates the whole picture the header declares, whatever the file holds: a
few megabytes of PNG can declare 30000×30000 pixels, and a patched JPEG header makes a
2 KB file decode into 2.7 GB. So `image_size` reads width, height and the decoder's
bytes per pixel from the header of each format mlsensors decodes (JPEG, PNG, BMP, PNM,
TIFF, WebP), the way their decoders do, and `check_image_size` holds them against the
limits in `mlsensors.limits`. A header that cannot be read is an error too: what we
cannot measure, we do not decode.

The bytes a decoder holds are its output for the flags `decode_image` uses (JPEG always
8-bit BGR; the others unchanged), rounded up where the header leaves it open (a PNG may
gain an alpha channel from its transparency chunk), plus, for a progressive JPEG, the
coefficients it keeps until its last scan.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mlsensors.errors import InputError
from mlsensors.limits import MAX_DECODED_BYTES, MAX_PIXELS

_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7,
                       0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_PNM_HEADER_MAX = 4096
"""A PNM header (magic, width, height, maxval, comments) longer than this is refused."""


@dataclass(frozen=True, slots=True)
class ImageSize:
    """What a header declares: the picture's size and the bytes its decoder will hold."""

    format: str
    width: int
    height: int
    decoded_bytes: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def image_size(data: bytes, kind: str) -> ImageSize:
    """The size `data`'s header declares, for `kind` as `image_format` named it.

    Raises InputError (without the file name; the caller adds it) when the header is
    cut short, inconsistent or declares no pixels.
    """
    reader = _READERS.get(kind)
    if reader is None:
        raise InputError(f"no size reader for {kind} images")
    try:
        width, height, per_pixel = reader(data)
    except (struct.error, IndexError, ValueError):
        width = height = 0
        per_pixel = 0
    if width <= 0 or height <= 0 or per_pixel <= 0:
        raise InputError(f"corrupt {kind} header (cut short, or no size declared); "
                         "an image that cannot be measured is not decoded")
    return ImageSize(kind, width, height, int(width * height * per_pixel))


def check_image_size(size: ImageSize) -> None:
    """InputError when `size` is over the pixel or decoded-bytes limit."""
    if size.pixels > MAX_PIXELS:
        raise InputError(
            f"{size.width}×{size.height} {size.format} image is {size.pixels / 1e6:.1f} "
            f"megapixels, more than the {MAX_PIXELS / 1e6:g} allowed (scale it down)")
    if size.decoded_bytes > MAX_DECODED_BYTES:
        raise InputError(
            f"{size.width}×{size.height} {size.format} image would take "
            f"{size.decoded_bytes >> 20} MiB to decode, more than the "
            f"{MAX_DECODED_BYTES >> 20} MiB allowed (scale it down)")


def _png(data: bytes) -> tuple[int, int, float]:
    # The first chunk must be IHDR (libpng refuses anything else).
    length, tag = struct.unpack_from(">I4s", data, 8)
    if tag != b"IHDR" or length != 13:
        return 0, 0, 0
    width, height, depth, colour = struct.unpack_from(">IIBB", data, 16)
    if colour not in (0, 2, 3, 4, 6) or depth not in (1, 2, 4, 8, 16):
        return 0, 0, 0
    # Grey stays one channel unless a transparency chunk adds alpha; count four always.
    return width, height, 4 * (2 if depth == 16 else 1)


def _jpeg(data: bytes) -> tuple[int, int, float]:
    # Walk the marker segments from SOI to the first frame header, as libjpeg does.
    pos = 2
    while True:  # runs off the end (IndexError) when there is no frame header
        while data[pos] != 0xFF:  # stray bytes: libjpeg skips them with a warning
            pos += 1
        while data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker == 0 or marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # a second SOI, EOI or scan before any frame
            return 0, 0, 0
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            return 0, 0, 0
        if marker in _JPEG_SOF:
            _precision, height, width, components = struct.unpack_from(">BHHB", data, pos + 2)
            if components not in (1, 3, 4):
                return 0, 0, 0
            sampling = [data[pos + 9 + 3 * i] for i in range(components)]
            h = [f >> 4 for f in sampling]
            v = [f & 15 for f in sampling]
            if min(h + v) < 1:
                return 0, 0, 0
            # 8-bit BGR out; a progressive frame also holds every coefficient (2 bytes)
            # of every component, at its own sampled resolution, until the last scan.
            progressive = marker in (0xC2, 0xC6, 0xCA, 0xCE)
            share = sum(hi * vi for hi, vi in zip(h, v, strict=True)) / (max(h) * max(v))
            return width, height, 3 + (2 * share if progressive else 0)
        pos += length


def _bmp(data: bytes) -> tuple[int, int, float]:
    (header,) = struct.unpack_from("<I", data, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER
        width, height, _planes, bits = struct.unpack_from("<HHHH", data, 18)
    elif 40 <= header <= 124:
        width, height, _planes, bits = struct.unpack_from("<iiHH", data, 18)
        height = abs(height)  # negative: stored top-down
    else:
        return 0, 0, 0
    if bits not in (1, 4, 8, 16, 24, 32):
        return 0, 0, 0
    return width, height, 4 if bits == 32 else 3


def _pnm(data: bytes) -> tuple[int, int, float]:
    magic = data[1:2]
    fields = 2 if magic in (b"1", b"4") else 3
    values: list[int] = []
    pos, end = 2, min(len(data), _PNM_HEADER_MAX)
    while len(values) < fields:
        while pos < end and data[pos:pos + 1].isspace():
            pos += 1
        if pos < end and data[pos:pos + 1] == b"#":
            newline = data.find(b"\n", pos, end)
            if newline < 0:
                return 0, 0, 0
            pos = newline + 1
            continue
        start = pos
        while pos < end and data[pos:pos + 1].isdigit():
            pos += 1
        if pos == start or pos >= end or pos - start > 9:
            return 0, 0, 0
        values.append(int(data[start:pos]))
    width, height = values[0], values[1]
    maxval = values[2] if fields == 3 else 1
    if not 0 < maxval < 65536:
        return 0, 0, 0
    channels = 3 if magic in (b"3", b"6") else 1
    return width, height, channels * (2 if maxval > 255 else 1)


def _tiff(data: bytes) -> tuple[int, int, float]:
    # The first image file directory: the page OpenCV's decoder reads.
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, offset)
    tags: dict[int, tuple[int, int, bytes]] = {}
    for i in range(count):
        tag, kind, n, value = struct.unpack_from(order + "HHI4s", data, offset + 2 + 12 * i)
        tags.setdefault(tag, (kind, n, value))

    def first(tag: int, default: int) -> int:
        if tag not in tags:
            return default
        kind, n, value = tags[tag]
        if kind == 3:  # SHORT
            if n > 2:
                (where,) = struct.unpack(order + "I", value)
                return struct.unpack_from(order + "H", data, where)[0]
            return struct.unpack_from(order + "H", value)[0]
        if kind == 4:  # LONG
            if n > 1:
                (where,) = struct.unpack(order + "I", value)
                return struct.unpack_from(order + "I", data, where)[0]
            return struct.unpack(order + "I", value)[0]
        raise ValueError(f"TIFF tag {tag} has type {kind}")

    width, height = first(256, 0), first(257, 0)
    bits, samples, photometric = first(258, 1), first(277, 1), first(262, 1)
    if not 0 < bits <= 64 or not 0 < samples <= 16:
        return 0, 0, 0
    channels = max(samples, 1 if photometric in (0, 1) else 3)
    return width, height, channels * -(-bits // 8)


def _webp(data: bytes) -> tuple[int, int, float]:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas, 24-bit sizes minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    elif chunk == b"VP8L":  # lossless: 14-bit sizes minus one after the 0x2f signature
        if data[20] != 0x2F:
            return 0, 0, 0
        (bits,) = struct.unpack_from("<I", data, 21)
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 ":  # lossy: 14-bit sizes after the key frame's start code
        if data[23:26] != b"\x9d\x01\x2a":
            return 0, 0, 0
        w, h = struct.unpack_from("<HH", data, 26)
        width, height = w & 0x3FFF, h & 0x3FFF
    else:
        return 0, 0, 0
    return width, height, 4


_READERS = {"PNG": _png, "JPEG": _jpeg, "BMP": _bmp, "PNM": _pnm, "TIFF": _tiff,
            "WebP": _webp}
