"""read_image and folders, on real photos and on files written here in every format."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from mlsensors.errors import InputError, SourceError
from mlsensors.sources import FolderSource, UnreadableFile, open_source, read_image
from mlsensors.types import Frame, SourceGap

PORTRAITS = "faces/face_recognition_examples"


def _quadrants(height: int = 48, width: int = 64) -> np.ndarray:
    """An RGB picture whose four quadrants differ, so any flip or turn shows."""
    image = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    image[:h, :w] = (255, 0, 0)
    image[:h, w:] = (0, 255, 0)
    image[h:, :w] = (0, 0, 255)
    image[h:, w:] = (255, 255, 255)
    return image


def _jpeg(rgb: np.ndarray, orientation: int | None = None) -> bytes:
    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    assert ok
    data = buffer.tobytes()
    if orientation is None:
        return data
    # An APP1 Exif segment holding one little-endian IFD entry: Orientation (0x0112).
    entry = struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


# How a viewer shows a picture stored with each EXIF orientation (TIFF 6.0 / Exif 2.3).
DISPLAY = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_is_applied(tmp_path, orientation):
    stored = _quadrants()
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(_jpeg(stored, orientation))
    image = read_image(path)
    expected = DISPLAY[orientation](stored)
    assert image.shape == expected.shape
    assert image.flags.c_contiguous and image.dtype == np.uint8

    # Compare quadrant means: JPEG blurs colour across the seams, but the eight
    # orientations put the four distinct quadrants in eight distinct arrangements.
    def corners(a):
        return cv2.resize(np.ascontiguousarray(a), (2, 2), interpolation=cv2.INTER_AREA)

    assert np.abs(corners(image).astype(int) - corners(expected)).max() < 12


def test_real_photo_is_rgb_in_the_right_order(data_dir):
    image = read_image(data_dir / PORTRAITS / "obama.jpg")
    reference = cv2.imread(str(data_dir / PORTRAITS / "obama.jpg"))
    assert image.shape == reference.shape
    assert np.array_equal(image, reference[:, :, ::-1])


def test_real_png_portrait(data_dir):
    image = read_image(data_dir / PORTRAITS / "lin-manuel-miranda.png")
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


def test_png_16_bit_is_scaled_to_8_bit(tmp_path):
    deep = np.zeros((4, 5, 3), np.uint16)
    deep[..., 0] = 65535  # red full
    deep[..., 1] = 257 * 100  # green 100
    deep[..., 2] = 0
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), deep[:, :, ::-1])  # OpenCV writes BGR
    image = read_image(path)
    assert image.dtype == np.uint8
    assert image[0, 0].tolist() == [255, 100, 0]


def test_png_with_alpha_is_composited_on_black(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = [[255, 0], [255, 255]]
    path = tmp_path / "alpha.png"
    assert cv2.imwrite(str(path), rgba[:, :, [2, 1, 0, 3]])
    image = read_image(path)
    assert image[0, 0].tolist() == [200, 100, 50]
    assert image[0, 1].tolist() == [0, 0, 0]


def test_grey_pgm_and_bmp(tmp_path, data_dir):
    grey = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    assert cv2.imwrite(str(tmp_path / "grey.pgm"), grey)
    image = read_image(tmp_path / "grey.pgm")
    assert image.shape == (4, 6, 3) and np.array_equal(image[:, :, 1], grey)
    orl = read_image(data_dir / "orl" / "s1" / "1.pgm")
    assert orl.shape == (112, 92, 3)

    rgb = _quadrants(8, 8)
    assert cv2.imwrite(str(tmp_path / "q.bmp"), rgb[:, :, ::-1])
    assert np.array_equal(read_image(tmp_path / "q.bmp"), rgb)


def _truncated(data_dir: Path) -> bytes:
    data = (data_dir / PORTRAITS / "obama.jpg").read_bytes()
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.jpg", b"", "empty file"),
        ("notes.jpg", b"this is not a picture\n", "not an image"),
        ("cut.png", None, "truncated PNG"),
        ("cut.jpg", "truncated", "truncated JPEG"),
        ("lie.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50 + b"IEND\xaeB`\x82", "corrupt"),
        ("bad.bmp", b"BM" + b"\xff" * 30, "BMP"),
    ],
)
def test_unusable_files_raise_input_error_naming_file_and_problem(
    tmp_path, data_dir, name, content, words
):
    path = tmp_path / name
    if content is None:
        _, png = cv2.imencode(".png", _quadrants())
        content = png.tobytes()[:-30]
    elif content == "truncated":
        content = _truncated(data_dir)
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def test_missing_file_is_a_source_error_and_a_folder_an_input_error(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_image(tmp_path / "absent.jpg")
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)


def test_folder_yields_sorted_images_and_reports_bad_files(tmp_path, data_dir):
    (tmp_path / "b.jpg").write_bytes((data_dir / PORTRAITS / "obama_small.jpg").read_bytes())
    (tmp_path / "a.png").write_bytes(cv2.imencode(".png", _quadrants())[1].tobytes())
    (tmp_path / "c.jpg").write_bytes(_truncated(data_dir))
    (tmp_path / "d.bmp").write_bytes(b"")
    (tmp_path / "e.pgm").write_bytes(cv2.imencode(".pgm", np.zeros((3, 3), np.uint8))[1])
    (tmp_path / "notes.txt").write_text("skipped: not an image suffix")
    (tmp_path / ".hidden.jpg").write_bytes(b"skipped: hidden")
    (tmp_path / "sub.jpg").mkdir()  # a folder, whatever its name

    with open_source(tmp_path) as source:
        assert isinstance(source, FolderSource)
        items = list(source.frames())

    kinds = [
        (type(item).__name__, Path(getattr(item, "origin", "") or item.path).name) for item in items
    ]
    assert kinds == [
        ("Frame", "a.png"),
        ("Frame", "b.jpg"),
        ("UnreadableFile", "c.jpg"),
        ("UnreadableFile", "d.bmp"),
        ("Frame", "e.pgm"),
    ]
    frames = [item for item in items if isinstance(item, Frame)]
    assert [frame.index for frame in frames] == [0, 1, 2]
    bad = [item for item in items if isinstance(item, UnreadableFile)]
    assert all(isinstance(item, SourceGap) for item in bad)  # plain gap consumers still work
    assert bad[0].error.startswith("truncated JPEG") and bad[1].error.startswith("empty file")
    assert bad[0].reason == f"{bad[0].path}: {bad[0].error}"


def test_folder_loop_repeats_and_counts_on(tmp_path):
    cv2.imwrite(str(tmp_path / "one.png"), _quadrants())
    with open_source(tmp_path, loop=True) as source:
        frames = source.frames()
        indices = [next(frames).index for _ in range(5)]
    assert indices == [0, 1, 2, 3, 4]


def test_folder_loop_with_only_bad_files_stops_with_source_error(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    with open_source(tmp_path, loop=True) as source:
        frames = source.frames()
        assert isinstance(next(frames), UnreadableFile)
        with pytest.raises(SourceError, match="no image in the folder could be read"):
            next(frames)


def test_folder_without_images_is_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(SourceError, match="no image files"):
        open_source(tmp_path)


def test_single_image_source_and_its_errors(tmp_path, data_dir):
    path = data_dir / PORTRAITS / "obama-240p.jpg"
    with open_source(path) as source:
        frames = list(source.frames())
    assert len(frames) == 1 and frames[0].origin == str(path) and frames[0].index == 0
    with open_source(path, loop=True) as source:
        stream = source.frames()
        assert [next(stream).index for _ in range(3)] == [0, 1, 2]
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 20)
    with pytest.raises(InputError, match=r"bad\.jpg: truncated JPEG"):
        open_source(tmp_path / "bad.jpg")
