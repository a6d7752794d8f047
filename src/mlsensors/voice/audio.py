"""What flows from an audio source into the voice stages: blocks of 16 kHz mono PCM.

Every source (file, folder, stdin, microphone) is brought to one format before anything
else sees it: 16 kHz, mono, int16. Other rates are resampled (polyphase, scipy) and
other channel counts mixed down, both documented in docs/voice.md; anything that cannot
be brought there is one InputError line.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from mlsensors.errors import InputError

SAMPLE_RATE = 16000
BLOCK_SAMPLES = 320
"""20 ms: the unit sources hand on (a multiple of the wake-word front end's 10 ms step)."""
MIN_RATE = 8000
MAX_RATE = 192000


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """A run of samples: int16, 1-D, 16 kHz mono; `start` counts samples since the
    source began, `timestamp` is the monotonic clock when the block was read."""

    samples: np.ndarray
    start: int
    timestamp: float
    origin: str = ""

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


@dataclass(frozen=True, slots=True)
class AudioEnd:
    """A clip of a finite source is over: the stages flush what they hold for it."""

    origin: str = ""


@dataclass(frozen=True, slots=True)
class Clip:
    """A whole short recording, already at 16 kHz mono (float32 in [-1, 1])."""

    samples: np.ndarray
    origin: str = ""
    source_rate: int = SAMPLE_RATE
    source_channels: int = 1

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def pcm16(self) -> np.ndarray:
        return to_int16(self.samples)


def to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype(np.int16)


def conform(data: np.ndarray, rate: int, origin: str = "audio") -> np.ndarray:
    """Frames × channels (or 1-D) float audio at `rate` → float32 mono at 16 kHz.

    Channels are averaged; other rates are resampled with a polyphase filter
    (scipy.signal.resample_poly), which keeps the band below 8 kHz the models use.
    """
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(f"{origin}: sample rate {rate} Hz is outside "
                         f"{MIN_RATE}-{MAX_RATE} Hz")
    x = np.asarray(data, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if x.ndim != 1:
        raise InputError(f"{origin}: audio has shape {x.shape}, expected frames × channels")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{origin}: audio contains NaN or infinite samples")
    if rate != SAMPLE_RATE and len(x):
        from scipy.signal import resample_poly

        g = gcd(rate, SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)
