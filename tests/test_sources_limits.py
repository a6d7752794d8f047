"""Inputs that would eat the machine: decompression bombs in every image format, huge
video frames, special files, and the limits' own figures.

Peak memory is measured in a helper process (its own VmHWM, the peak resident size,
before and after reading), under an address-space cap so that a regression fails the test
instead of taking the machine's memory.
"""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from mlsensors.errors import InputError, SourceError
from mlsensors.limits import MAX_DECODED_BYTES, MAX_PIXELS
from mlsensors.source_names import check_source, list_images
from mlsensors.sources import open_source, read_image
from mlsensors.sources.image_header import ImageSize, check_image_size, image_size
from mlsensors.sources.images import image_format

HELPER_ADDRESS_SPACE = 2 << 30
"""The helper's RLIMIT_AS: room for Python, numpy and OpenCV, not for a bomb."""


# -- making bombs: tiny files that declare huge pictures --------------------------------


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def png_bomb(width: int, height: int, *, alpha: bool = False, rows: int = 100) -> bytes:
    """A real, complete PNG of black pixels (the issue's 30000×30000 is 11.8 MB). The
    deflate stream is one fully flushed unit repeated, so making it is quick."""
    channels = 4 if alpha else 3
    row = b"\x00" * (1 + channels * width)
    z = zlib.compressobj(1)
    head = z.compress(row * rows) + z.flush(zlib.Z_FULL_FLUSH)
    unit = z.compress(row * rows) + z.flush(zlib.Z_FULL_FLUSH)
    adler = ((height * len(row)) % 65521) << 16 | 1  # Adler-32 of all zero bytes
    assert height % rows == 0
    idat = head + unit * (height // rows - 1) + b"\x03\x00" + struct.pack(">I", adler)
    colour = 6 if alpha else 2
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _encoded(ext: str, image: np.ndarray, params: tuple = ()) -> bytearray:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return bytearray(buf.tobytes())


def jpeg_bomb() -> bytes:
    """A 16×16 JPEG whose frame header says 30000×30000: libjpeg fills the rest grey."""
    data = _encoded(".jpg", np.full((16, 16, 3), 90, np.uint8))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 30000, 30000)
    return bytes(data)


def tiff_bomb() -> bytes:
    data = _encoded(".tif", np.zeros((16, 16, 3), np.uint8))
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, ifd)
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from(order + "HH", data, at)
        if tag in (256, 257):
            fmt = "H" if kind == 3 else "I"
            struct.pack_into(order + fmt, data, at + 8, 30000)
    return bytes(data)


def webp_bomb(lossless: bool) -> bytes:
    image = np.zeros((16, 16, 3), np.uint8)
    data = _encoded(".webp", image, (cv2.IMWRITE_WEBP_QUALITY, 101 if lossless else 80))
    if data[12:16] == b"VP8L":
        struct.pack_into("<I", data, 21, (16383 | 16383 << 14) | (data[24] >> 4 << 28))
    else:
        assert data[12:16] == b"VP8 "
        struct.pack_into("<HH", data, 26, 16383, 16383)
    return bytes(data)


def bmp_bomb() -> bytes:
    data = _encoded(".bmp", np.zeros((16, 16, 3), np.uint8))
    struct.pack_into("<ii", data, 18, 30000, 30000)
    return bytes(data)


def pnm_bomb() -> bytes:
    return b"P6\n# a comment\n30000 30000\n255\n" + b"\x00" * 4096


def gif_bomb() -> bytes:
    """64 bytes of GIF (a video to OpenCV) with a 16000×16000 canvas: 2.5 GB decoded."""
    frame = (b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"  # one 1×1 image, no local table
             b"\x02\x02\x44\x01\x00")  # LZW: clear, pixel 0, end
    return (b"GIF89a" + struct.pack("<HHBBB", 16000, 16000, 0x80, 0, 0)
            + b"\x00\x00\x00\xff\xff\xff" + frame * 3 + b"\x3b")


BOMBS = {
    "bomb.png": lambda: png_bomb(30000, 30000),
    "bomb.jpg": jpeg_bomb,
    "bomb.tif": tiff_bomb,
    "lossless.webp": lambda: webp_bomb(True),
    "lossy.webp": lambda: webp_bomb(False),
    "bomb.bmp": bmp_bomb,
    "bomb.ppm": pnm_bomb,
}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bombs")
    for name, make in BOMBS.items():
        (folder / name).write_bytes(make())
    (folder / "bomb.gif").write_bytes(gif_bomb())
    return folder


# -- the helper process -----------------------------------------------------------------

HELPER = """
import json, sys
from mlsensors.errors import MlsensorsError
from mlsensors.sources import open_source, read_image

def hwm_kb():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])

how, path = sys.argv[1:]
before = hwm_kb()
out = {"error": None, "shape": None}
try:
    if how == "image":
        out["shape"] = list(read_image(path).shape)
    else:
        with open_source(path) as source:
            for item in source.frames():
                if hasattr(item, "image"):
                    out["shape"] = list(item.image.shape)
                    break
except MlsensorsError as e:
    out["error"] = str(e)
out["before_kb"] = before
out["peak_kb"] = hwm_kb()
print(json.dumps(out))
"""


def measured(how: str, path: Path) -> tuple[dict, int]:
    """What the helper got, and by how many MiB its peak resident memory (VmHWM, which
    starts afresh at exec) grew while it read `path`."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (HELPER_ADDRESS_SPACE, HELPER_ADDRESS_SPACE))

    proc = subprocess.run([sys.executable, "-c", HELPER, how, str(path)],
                          capture_output=True, preexec_fn=cap, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    report = json.loads(proc.stdout)
    return report, (report["peak_kb"] - report["before_kb"]) >> 10


# -- bombs --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_image_bombs_are_refused_from_their_header_in_little_memory(bombs, name):
    path = bombs / name
    report, grew_mib = measured("image", path)
    error = report["error"]
    assert error is not None, report
    assert error.startswith(str(path)) and "megapixels, more than the 50 allowed" in error
    assert "\n" not in error
    assert grew_mib < 48, f"reading {name} grew the peak by {grew_mib} MiB"


def test_the_issues_png_bomb_is_what_it_says(bombs):
    data = (bombs / "bomb.png").read_bytes()
    assert 11_000_000 < len(data) < 12_500_000  # 11.8 MB on disk...
    size = image_size(data, "PNG")
    assert (size.width, size.height) == (30000, 30000)  # ...and 2.7 GB of pixels


@pytest.mark.parametrize("how", ["image", "source"])
def test_bombs_inside_a_folder_are_reported_and_the_folder_goes_on(bombs, tmp_path, how):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in BOMBS:
        (folder / name).write_bytes((bombs / name).read_bytes())
    cv2.imwrite(str(folder / "zz-good.png"), np.full((20, 30, 3), 200, np.uint8))
    with open_source(folder) as source:
        items = list(source.frames())
    problems = [i.error for i in items[:-1]]
    assert len(problems) == len(BOMBS) and all("megapixels" in p for p in problems), problems
    assert items[-1].image.shape == (20, 30, 3)
    if how == "source":
        report, grew_mib = measured("source", folder)
        assert report["error"] is None and report["shape"] == [20, 30, 3]
        assert grew_mib < 48


def test_video_whose_frames_are_too_large_is_refused_before_decoding(bombs):
    report, grew_mib = measured("source", bombs / "bomb.gif")
    error = report["error"]
    assert error is not None and "16000×16000 video frames are 256.0 megapixels" in error
    assert grew_mib < 48, f"the 64-byte GIF grew the peak by {grew_mib} MiB"


class _GrowingVideo:
    """A capture that declares 640×480, then hands out a frame of 60 megapixels."""

    def __init__(self) -> None:
        self.frames = [np.zeros((480, 640, 3), np.uint8),
                       np.lib.stride_tricks.as_strided(np.zeros(3, np.uint8),
                                                       (6000, 10000, 3), (0, 0, 1))]

    def isOpened(self) -> bool:
        return True

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: 640, cv2.CAP_PROP_FRAME_HEIGHT: 480}.get(prop, 0)

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        pass


def test_a_video_whose_frames_grow_past_the_limit_stops_with_an_error(tmp_path):
    from mlsensors.sources.video import VideoSource

    path = tmp_path / "grows.avi"
    path.write_bytes(b"RIFF\x00\x00\x00\x00AVI ")
    source = VideoSource(path, capture_factory=lambda _: _GrowingVideo())
    frames = source.frames()
    assert next(frames).image.shape == (480, 640, 3)
    with pytest.raises(InputError, match=r"10000×6000 video frames are 60\.0 megapixels"):
        next(frames)


def test_a_video_file_over_the_byte_limit_is_refused_before_ffmpeg_opens_it(tmp_path):
    path = tmp_path / "huge.mp4"
    with open(path, "wb") as f:
        f.truncate(17 << 30)  # sparse: no disk used
    with pytest.raises(InputError, match=r"huge\.mp4 is 17\.0 GiB, more than the 16\.0 GiB"):
        open_source(path)


@pytest.mark.slow
def test_the_largest_image_allowed_decodes_within_the_documented_memory(tmp_path):
    # 6400×6400 RGBA: 41 megapixels, 156 MiB decoded, then 117 MiB of RGB: the worst
    # case the limits allow. docs/sources.md states the peak measured here.
    path = tmp_path / "largest.png"
    path.write_bytes(png_bomb(6400, 6400, alpha=True))
    report, grew_mib = measured("image", path)
    assert report["error"] is None and report["shape"] == [6400, 6400, 3]
    assert grew_mib < 384, f"the largest image allowed took {grew_mib} MiB"
    path.write_bytes(png_bomb(6500, 6500, alpha=True))
    report, _ = measured("image", path)
    assert "would take 161 MiB to decode" in report["error"]


# -- the header reader --------------------------------------------------------------------


@pytest.mark.parametrize("ext, shape, dtype", [
    (".png", (17, 33), np.uint8), (".png", (17, 33, 3), np.uint16),
    (".png", (5, 300, 4), np.uint8), (".jpg", (17, 33, 3), np.uint8),
    (".jpg", (17, 33), np.uint8), (".bmp", (17, 33, 3), np.uint8),
    (".bmp", (17, 33, 4), np.uint8), (".ppm", (17, 33, 3), np.uint8),
    (".pgm", (17, 33), np.uint16), (".pbm", (17, 33), np.uint8),
    (".tif", (17, 33, 3), np.uint8), (".tif", (17, 33), np.uint16),
    (".tif", (17, 33, 4), np.uint16), (".webp", (17, 33, 3), np.uint8),
    (".webp", (17, 33, 4), np.uint8),
])
def test_header_sizes_match_what_the_decoder_makes(ext, shape, dtype):
    image = np.random.default_rng(1).integers(0, 250, shape).astype(dtype)
    data = bytes(_encoded(ext, image))
    size = image_size(data, image_format(data[:16]))
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8),
                           cv2.IMREAD_COLOR if ext == ".jpg" else cv2.IMREAD_UNCHANGED)
    assert (size.height, size.width) == decoded.shape[:2]
    assert size.decoded_bytes >= decoded.nbytes, "the estimate never undercounts"


def test_progressive_jpeg_and_lossless_webp_headers():
    image = np.random.default_rng(2).integers(0, 250, (40, 50, 3)).astype(np.uint8)
    progressive = bytes(_encoded(".jpg", image, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)))
    # 4:2:0: BGR out (3 bytes a pixel) and 1.5 coefficients of 2 bytes a pixel
    assert image_size(progressive, "JPEG") == ImageSize("JPEG", 50, 40, 50 * 40 * 6)
    sampled = bytes(_encoded(".jpg", image, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1,
                                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)))
    assert image_size(sampled, "JPEG") == ImageSize("JPEG", 50, 40, 50 * 40 * 9)
    baseline = bytes(_encoded(".jpg", image))
    assert image_size(baseline, "JPEG") == ImageSize("JPEG", 50, 40, 50 * 40 * 3)
    lossless = bytes(_encoded(".webp", image, (cv2.IMWRITE_WEBP_QUALITY, 101)))
    assert image_size(lossless, "WebP") == ImageSize("WebP", 50, 40, 50 * 40 * 4)


def test_every_test_photograph_is_measured_right(data_dir):
    checked = 0
    for path in sorted(data_dir.rglob("*")):
        kind = image_format(path.read_bytes()[:16]) if path.is_file() else None
        if kind is None:
            continue
        size = image_size(path.read_bytes(), kind)
        assert read_image(path).shape[:2] == (size.height, size.width), path
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("data, kind", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", "PNG"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT" + b"\x00" * 20, "PNG"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
    (b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 20, "JPEG"),
    (b"BM" + b"\x00" * 12 + struct.pack("<I", 7) + b"\x00" * 20, "BMP"),
    (b"P6\n12", "PNM"), (b"P6\n#" + b"x" * 5000, "PNM"), (b"P5 0 10 255\n", "PNM"),
    (b"II*\x00\xff\xff\x00\x00", "TIFF"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP"),
])
def test_headers_that_cannot_be_measured_are_refused(data, kind):
    with pytest.raises(InputError, match=f"corrupt {kind} header"):
        image_size(data, kind)


def test_limits_in_bytes_as_well_as_pixels():
    check_image_size(ImageSize("PNG", 6400, 6400, 6400 * 6400 * 4))  # 41 MP, 156 MiB
    check_image_size(ImageSize("JPEG", 8000, 6250, 8000 * 6250 * 3))  # 50 MP, 143 MiB
    with pytest.raises(InputError, match=r"50\.0 megapixels"):
        check_image_size(ImageSize("JPEG", 10000, 5000 + 1, 10000 * 5001 * 3))
    deep = ImageSize("TIFF", 6000, 5000, 6000 * 5000 * 8)  # 30 MP of 16-bit RGBA
    assert deep.pixels < MAX_PIXELS and deep.decoded_bytes > MAX_DECODED_BYTES
    with pytest.raises(InputError, match=r"would take 228 MiB to decode, more than the 160"):
        check_image_size(deep)


# -- special files: never read, never hang -------------------------------------------------


@pytest.fixture()
def specials(tmp_path) -> dict[str, Path]:
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    sock = tmp_path / "socket.jpg"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    yield {"a FIFO": fifo, "a folder": folder, "a socket": sock, "a device": zero}
    server.close()


@pytest.mark.parametrize("kind", ["a FIFO", "a folder", "a socket", "a device"])
def test_special_files_as_images_are_one_line_errors(specials, kind):
    with pytest.raises(InputError, match=f"is {kind}.*, not a regular file") as caught:
        read_image(specials[kind])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", ["a FIFO", "a socket", "a device"])
def test_special_files_as_sources_are_one_line_errors(specials, kind):
    with pytest.raises(InputError, match=f"source .* is {kind}.*, not a regular file"):
        open_source(specials[kind])
    with pytest.raises(InputError, match=f"is {kind}"):
        check_source(specials[kind])
    video = specials[kind].with_name(f"{specials[kind].stem}.mp4")
    specials[kind].rename(video)
    with pytest.raises(InputError, match=f"is {kind}"):
        open_source(video)


def test_a_folder_named_like_an_image_is_a_folder(specials):
    with pytest.raises(SourceError, match="folder contains no image files"):
        open_source(specials["a folder"])


def test_special_entries_in_a_folder_are_skipped(specials, tmp_path):
    cv2.imwrite(str(tmp_path / "good.png"), np.zeros((8, 8, 3), np.uint8))
    assert list_images(tmp_path) == [tmp_path / "good.png"]
    with open_source(tmp_path) as source:
        assert [f.origin for f in source.frames()] == [str(tmp_path / "good.png")]


def test_a_folder_with_too_many_entries_is_refused(tmp_path, monkeypatch):
    import mlsensors.source_names as names

    monkeypatch.setattr(names, "MAX_FOLDER_ENTRIES", 50)
    for i in range(51):
        (tmp_path / f"{i}.txt").touch()
    with pytest.raises(InputError, match="more than 50 entries"):
        list_images(tmp_path)


def test_an_image_over_the_byte_limit_is_refused_before_reading(tmp_path, monkeypatch):
    import mlsensors.sources.images as images

    monkeypatch.setattr(images, "MAX_IMAGE_FILE_BYTES", 1000)
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    with pytest.raises(InputError, match=r"image .*big\.png is .* more than the 1000 B allowed"):
        read_image(big)


def test_the_decoder_bound_backs_the_header_check():
    assert os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] == str(MAX_PIXELS)
    # A header our reader and OpenCV's decoder read alike: OpenCV refuses it itself too.
    proc = subprocess.run(
        [sys.executable, "-c", "import mlsensors, cv2, numpy as np, sys;"
         "d = np.frombuffer(sys.stdin.buffer.read(), np.uint8);"
         "print(cv2.imdecode(d, cv2.IMREAD_UNCHANGED))"],
        input=pnm_bomb(), capture_output=True, timeout=60)
    assert b"validateInputImageSize" in proc.stderr + proc.stdout or proc.returncode != 0


def test_limit_figures_are_documented():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "sources.md").read_text()
    for figure in ("50 megapixels", "64 MiB", "160 MiB", "16 GiB", "100,000"):
        assert figure in docs, figure
    assert re.search(r"largest PNG allowed.*\| \d+ MiB \|", docs)
