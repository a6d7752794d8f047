"""The DS-CNN keyword model's front end: 1 s → 49 × 10 MFCC, in numpy.

As MLPerf Tiny's keyword-spotting training scripts compute it (TensorFlow's signal ops):
30 ms periodic Hann windows every 20 ms, a 512-point FFT magnitude, 40 HTK-mel bands
from 20 to 4,000 Hz, log(mel + 1e-6), and the first 10 coefficients of TensorFlow's
DCT-II scaled by 1/sqrt(2·40). Pure and stateless: the same window always gives the
same features.
"""

from __future__ import annotations

import numpy as np

from mlsensors.voice.audio import SAMPLE_RATE

WINDOW = SAMPLE_RATE
FRAME = 480
STEP = 320
FFT = 512
MELS = 40
COEFFS = 10
FRAMES = 1 + (WINDOW - FRAME) // STEP  # 49


def _mel_matrix() -> np.ndarray:
    def hz_to_mel(f):
        return 1127.0 * np.log1p(f / 700.0)

    bins = FFT // 2 + 1
    mel_of_bin = hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, bins)[1:])[:, None]
    edges = np.linspace(hz_to_mel(20.0), hz_to_mel(4000.0), MELS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((mel_of_bin - lower) / (centre - lower),
                                         (upper - mel_of_bin) / (upper - centre)))
    return np.vstack([np.zeros((1, MELS)), weights]).astype(np.float32)


_MEL = _mel_matrix()
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME)).astype(np.float32)
_DCT = (2 * np.cos(np.pi * np.arange(COEFFS)[:, None] * (2 * np.arange(MELS) + 1) / (2 * MELS))
        / np.sqrt(2 * MELS)).astype(np.float32).T
_FRAME_INDEX = np.arange(FRAMES)[:, None] * STEP + np.arange(FRAME)


def mfcc(window: np.ndarray) -> np.ndarray:
    """float32 (49, 10) for one second of float audio (shorter is zero-padded)."""
    x = np.asarray(window, np.float32)[:WINDOW]
    if len(x) < WINDOW:
        x = np.pad(x, (0, WINDOW - len(x)))
    spectrum = np.abs(np.fft.rfft(x[_FRAME_INDEX] * _HANN, FFT)).astype(np.float32)
    return np.log(spectrum @ _MEL + 1e-6) @ _DCT
