"""The voicing check: a voice has pitch, noise has none."""

from __future__ import annotations

import numpy as np

from mlsensors.voice.audio import SAMPLE_RATE
from mlsensors.voice.voicing import VoicingOptions, is_voiced, periodicity, voiced_seconds


def vowel(seconds=0.3, pitch=140.0, seed=0):
    """A glottal pulse train through two resonances: crude, but periodic like a vowel."""
    n = int(seconds * SAMPLE_RATE)
    x = np.zeros(n, np.float32)
    x[::int(SAMPLE_RATE / pitch)] = 1.0
    from scipy.signal import lfilter

    for f, bw in ((700.0, 80.0), (1200.0, 100.0)):
        r = np.exp(-np.pi * bw / SAMPLE_RATE)
        x = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * f / SAMPLE_RATE), r * r], x)
    x = x.astype(np.float32)
    x += 0.01 * np.random.default_rng(seed).normal(size=n).astype(np.float32)
    return 0.3 * x / np.abs(x).max()


def test_a_vowel_is_voiced_and_noise_is_not():
    rng = np.random.default_rng(1)
    assert is_voiced(vowel())
    assert voiced_seconds(vowel(0.3)) > 0.2
    assert not is_voiced(0.3 * rng.normal(size=SAMPLE_RATE).astype(np.float32))
    assert not is_voiced(np.zeros(SAMPLE_RATE, np.float32))
    assert periodicity(np.zeros(100, np.float32)).size == 0


def test_too_little_voice_is_not_enough():
    rng = np.random.default_rng(2)
    noise = 0.2 * rng.normal(size=SAMPLE_RATE // 2).astype(np.float32)
    short = np.concatenate([noise, vowel(0.02), noise])
    assert not is_voiced(short)
    assert is_voiced(short, VoicingOptions(min_voiced=0.0))
