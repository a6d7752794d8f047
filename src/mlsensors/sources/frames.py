"""Normalise raw numpy frames into the one layout every later stage expects.

Callers of the Python API hand over whatever their camera library produced: BGR from
OpenCV, RGB from most others, grey, RGBA with alpha, 16-bit or float images. The
detector, the sensor loop and the privacy guarantees all reason about a single format,
RGB uint8 H×W×3 C-contiguous, so everything is converted here, once, and anything that
cannot be converted is refused with a message that says what was received.
"""

from __future__ import annotations

import numpy as np

from mlsensors.errors import InputError

_ORDERS = ("rgb", "bgr")


_BLOCK = 1 << 20
"""Elements converted at a time: temporaries (wider integers for rounding, alpha
products) stay a few megabytes, whatever the size of the picture."""


def as_rgb(array: np.ndarray, order: str = "rgb") -> np.ndarray:
    """Return `array` as a C-contiguous RGB uint8 H×W×3 image.

    Accepted: grey (H×W or H×W×1), colour (H×W×3) and colour with alpha (H×W×4), with
    `order` saying whether colour channels are "rgb" (RGB/RGBA) or "bgr" (BGR/BGRA, as
    OpenCV produces); uint8, uint16 (full 0–65535 range, scaled to 0–255 with rounding)
    or floating point in [0, 1]. Alpha is composited on black, because the colour of a
    transparent pixel is undefined and often garbage. An input that is already RGB uint8
    and C-contiguous is returned as is, without a copy.

    The conversion runs over blocks of rows into the one output array, so converting a
    large picture costs its output and a few megabytes, not several copies of it.
    Raises InputError naming the shape or dtype received for anything else.
    """
    if order not in _ORDERS:
        raise InputError(f"unknown channel order {order!r} (expected 'rgb' or 'bgr')")
    if not isinstance(array, np.ndarray):
        raise InputError(
            f"expected a numpy array, got {type(array).__name__} (convert it with np.asarray)"
        )
    image = _check_dtype(_check_shape(array))
    if (image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and order == "rgb"
            and image.flags.c_contiguous):
        return image
    height, width = image.shape[:2]
    out = np.empty((height, width, 3), dtype=np.uint8)
    rows = max(1, _BLOCK // max(1, image[0].size))
    for top in range(0, height, rows):
        out[top:top + rows] = _block_to_rgb(image[top:top + rows], order)
    return out


def _block_to_rgb(block: np.ndarray, order: str) -> np.ndarray:
    block = _to_uint8(block)
    if block.ndim == 2:
        return block[:, :, np.newaxis]  # broadcast to three channels on assignment
    if block.shape[2] == 4:
        block = _composite_on_black(block)
    return block[:, :, ::-1] if order == "bgr" else block


def _check_shape(array: np.ndarray) -> np.ndarray:
    layout = "H×W, H×W×1, H×W×3 or H×W×4"
    if array.ndim not in (2, 3):
        raise InputError(f"expected an image of shape {layout}; got shape {array.shape}")
    if array.ndim == 3 and array.shape[2] not in (1, 3, 4):
        raise InputError(
            f"expected 1, 3 or 4 channels ({layout}); got {array.shape[2]} "
            f"channels in shape {array.shape}"
        )
    if array.size == 0:
        raise InputError(f"empty image: shape {array.shape} has no pixels")
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    return array


def _check_dtype(array: np.ndarray) -> np.ndarray:
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "u" and size in (1, 2):
        return array
    if kind == "f":
        low, high = float(array.min()), float(array.max())  # NaN propagates into both
        if not (np.isfinite(low) and np.isfinite(high)):
            raise InputError(f"float image (dtype {array.dtype}) contains NaN or infinity")
        if low < 0.0 or high > 1.0:
            raise InputError(
                f"float image (dtype {array.dtype}) must lie in [0, 1]; "
                f"got values from {low:g} to {high:g}"
            )
        return array
    raise InputError(f"unsupported dtype {array.dtype} (expected uint8, uint16 or float in [0, 1])")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "u" and size == 1:
        return array
    if kind == "u" and size == 2:
        # round(x / 257) maps 0..65535 exactly onto 0..255; 257 is odd, so no ties.
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return (array * 255.0 + 0.5).astype(np.uint8)


def _composite_on_black(image: np.ndarray) -> np.ndarray:
    colour, alpha = image[:, :, :3], image[:, :, 3]
    if (alpha == 255).all():
        return colour
    weighted = colour.astype(np.uint16) * alpha[:, :, np.newaxis] + 127
    return (weighted // 255).astype(np.uint8)
