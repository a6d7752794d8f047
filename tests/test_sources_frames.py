"""as_rgb: every accepted layout ends as C-contiguous RGB uint8; everything else is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlsensors.errors import InputError
from mlsensors.sources import as_rgb

RGB = np.array([[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [200, 210, 220]]], np.uint8)


def test_rgb_uint8_contiguous_is_returned_without_copy():
    assert as_rgb(RGB) is RGB


def test_non_contiguous_rgb_is_made_contiguous():
    wide = np.zeros((4, 6, 3), np.uint8)
    wide[:, ::2] = 7
    out = as_rgb(wide[:, ::2])
    assert out.flags.c_contiguous and out.shape == (4, 3, 3) and (out == 7).all()


def test_bgr_is_swapped():
    out = as_rgb(RGB[:, :, ::-1].copy(), order="bgr")
    assert np.array_equal(out, RGB) and out.flags.c_contiguous


@pytest.mark.parametrize("shape", [(2, 2), (2, 2, 1)])
def test_grey_becomes_three_equal_channels(shape):
    grey = np.array([[0, 100], [200, 255]], np.uint8).reshape(shape)
    out = as_rgb(grey, order="bgr")  # order is irrelevant for grey
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    for channel in range(3):
        assert np.array_equal(out[:, :, channel], grey.reshape(2, 2))


def test_alpha_is_composited_on_black():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, :, :3] = 200
    rgba[0, :, 3] = [255, 128, 0]
    out = as_rgb(rgba)
    assert out[0, 0].tolist() == [200, 200, 200]
    assert out[0, 1].tolist() == [100, 100, 100]  # 200 * 128 / 255 = 100.4
    assert out[0, 2].tolist() == [0, 0, 0]


def test_bgra_keeps_colour_order_right():
    bgra = np.dstack([RGB[:, :, ::-1], np.full((2, 2), 255, np.uint8)])
    assert np.array_equal(as_rgb(bgra, order="bgr"), RGB)


def test_uint16_full_range_scales_with_rounding():
    values = np.array([[0, 257, 128, 129, 65535, 32896]], np.uint16)
    out = as_rgb(values)[:, :, 0]
    assert out.tolist() == [[0, 1, 0, 1, 255, 128]]


def test_uint16_big_endian_is_read_by_value():
    values = np.array([[65535, 0]], dtype=">u2")
    assert as_rgb(values)[0, :, 0].tolist() == [255, 0]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_unit_range(dtype):
    values = np.array([[0.0, 0.5, 1.0, 0.1]], dtype)
    assert as_rgb(values)[0, :, 0].tolist() == [0, 128, 255, 26]


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((0, 4, 3), np.uint8), ["empty", "(0, 4, 3)"]),
        (np.zeros((4, 0), np.uint8), ["empty", "(4, 0)"]),
        (np.zeros(5, np.uint8), ["shape", "(5,)"]),
        (np.zeros((2, 2, 3, 1), np.uint8), ["shape", "(2, 2, 3, 1)"]),
        (np.zeros((2, 2, 2), np.uint8), ["2 channels", "(2, 2, 2)"]),
        (np.zeros((2, 2, 3), np.int64), ["dtype int64"]),
        (np.zeros((2, 2, 3), bool), ["dtype bool"]),
        (np.full((2, 2, 3), 1.5, np.float32), ["[0, 1]", "1.5"]),
        (np.full((2, 2, 3), -0.1), ["[0, 1]", "-0.1"]),
        (np.full((2, 2), np.nan, np.float32), ["NaN"]),
        (np.zeros((), np.uint8), ["shape", "()"]),
    ],
)
def test_bad_arrays_raise_input_error_naming_what_was_received(array, words):
    with pytest.raises(InputError) as caught:
        as_rgb(array)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_non_array_and_bad_order_are_refused():
    with pytest.raises(InputError, match="numpy array, got list"):
        as_rgb([[1, 2], [3, 4]])
    with pytest.raises(InputError, match="channel order"):
        as_rgb(RGB, order="rbg")


def _images():
    shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3]))
    return st.one_of(
        arrays(np.uint8, shapes),
        arrays(np.uint16, shapes),
        arrays(np.float64, shapes, elements=st.floats(0.0, 1.0)),
    )


@given(_images(), st.sampled_from(["rgb", "bgr"]))
def test_any_accepted_input_matches_a_float_reference(array, order):
    out = as_rgb(array, order=order)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    assert out.shape == (*array.shape[:2], 3)
    full_scale = np.iinfo(array.dtype).max if array.dtype.kind == "u" else 1.0
    unit = array.astype(np.float64) / full_scale
    expected = np.floor(unit * 255.0 + 0.5).astype(np.uint8)
    expected = np.broadcast_to(expected, out.shape)
    if order == "bgr":
        expected = expected[:, :, ::-1]
    assert np.array_equal(out, expected)
