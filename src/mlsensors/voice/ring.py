"""The only audio the voice sensor keeps: the last ~2 s, in a fixed ring of int16.

Memory for it is allocated once; nothing else in the voice stages holds samples beyond
the block being processed and the 1 s window being embedded. It is never written to a
file or a log. `clear` zeroes it, so the words are gone from memory, not just unlinked.
"""

from __future__ import annotations

import numpy as np

from mlsensors.errors import InputError
from mlsensors.voice.audio import SAMPLE_RATE

RING_SECONDS = 2.0


class AudioRing:
    """The newest `capacity` samples of the stream, addressed by absolute sample index."""

    def __init__(self, seconds: float = RING_SECONDS) -> None:
        self.capacity = round(seconds * SAMPLE_RATE)
        self._buf = np.zeros(self.capacity, np.int16)
        self.end = 0
        """Absolute index one past the newest sample."""

    @property
    def start(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self.end - self.capacity)

    def write(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, np.int16)[-self.capacity:]
        skipped = 0 if len(samples) <= self.capacity else len(samples) - self.capacity
        self.end += skipped
        pos = self.end % self.capacity
        first = min(len(x), self.capacity - pos)
        self._buf[pos:pos + first] = x[:first]
        self._buf[:len(x) - first] = x[first:]
        self.end += len(x)

    def read(self, start: int, stop: int) -> np.ndarray:
        """A copy of samples [start, stop) as float32; parts no longer held are zeros."""
        if stop < start:
            raise InputError(f"ring read {start}..{stop} runs backwards")
        out = np.zeros(stop - start, np.float32)
        lo, hi = max(start, self.start), min(stop, self.end)
        if hi > lo:
            idx = np.arange(lo, hi) % self.capacity
            out[lo - start:hi - start] = self._buf[idx] / 32768.0
        return out

    def clear(self) -> None:
        self._buf.fill(0)
