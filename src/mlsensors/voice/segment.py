"""Where an utterance starts and ends: an energy endpointer over 10 ms frames.

Commands are short and said on purpose, so a level detector that follows the noise
floor finds them well and costs nothing: a frame is speech when it is `onset_db` above
the floor (and above an absolute minimum); an utterance starts after `min_speech`
speech and ends after `hangover` of non-speech. The hangover is the main part of the
end-of-utterance latency. An utterance longer than `max_speech` is not a command
(conversation, music): it is dropped whole and never embedded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mlsensors.voice.audio import SAMPLE_RATE

FRAME = SAMPLE_RATE // 100


@dataclass(frozen=True, slots=True)
class SegmentOptions:
    onset_db: float = 12.0
    floor_min_db: float = -70.0
    absolute_min_db: float = -55.0
    min_speech: float = 0.06
    hangover: float = 0.15
    max_speech: float = 1.2
    pre_roll: float = 0.05
    floor_rise: float = 0.005
    """How fast the noise floor may rise per frame (dB), so speech does not become floor."""


@dataclass(frozen=True, slots=True)
class Utterance:
    """Absolute sample indices of one stretch of speech, and where its energy centres."""

    start: int
    end: int
    centre: int
    peak_db: float

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


class Endpointer:
    """Feed samples in order; get each Utterance once its end is known."""

    def __init__(self, options: SegmentOptions | None = None) -> None:
        self.options = options or SegmentOptions()
        self.floor = self.options.floor_min_db
        self.position = 0
        self._pending = np.zeros(0, np.int16)
        self._start: int | None = None
        self._last_speech = 0
        self._run = 0
        self._energy: list[tuple[int, float]] = []
        self._too_long = False

    def reset(self) -> None:
        self.__init__(self.options)

    def feed(self, samples: np.ndarray, start: int) -> Iterator[Utterance]:
        if self._pending.size == 0:
            self.position = start
        x = np.concatenate([self._pending, np.asarray(samples, np.int16)])
        whole = len(x) // FRAME * FRAME
        self._pending = x[whole:]
        if whole:
            frames = x[:whole].astype(np.float32).reshape(-1, FRAME) / 32768.0
            levels = 10 * np.log10(np.maximum((frames ** 2).mean(axis=1), 1e-12))
            for level in levels:
                yield from self._frame(float(level))
                self.position += FRAME

    def flush(self) -> Iterator[Utterance]:
        """End of stream: an utterance still open ends here."""
        if self._start is not None and not self._too_long and self._energy:
            yield self._close(self.position)
        self._start = None
        self._energy = []
        self._pending = np.zeros(0, np.int16)
        self._too_long = False
        self._run = 0

    def _frame(self, level: float) -> Iterator[Utterance]:
        o = self.options
        speech = level > max(self.floor + o.onset_db, o.absolute_min_db)
        if not speech:
            self.floor = max(o.floor_min_db, min(level, self.floor + o.floor_rise * 20))
        else:
            self.floor = max(o.floor_min_db, min(level, self.floor + o.floor_rise))
        if self._start is None:
            self._run = self._run + 1 if speech else 0
            self._energy.append((self.position, level))
            self._energy = self._energy[-int(o.pre_roll * 100) - int(o.min_speech * 100):]
            if self._run * FRAME >= o.min_speech * SAMPLE_RATE:
                self._start = max(0, self.position + FRAME - self._run * FRAME
                                  - int(o.pre_roll * SAMPLE_RATE))
                self._last_speech = self.position + FRAME
                self._energy = [(p, v) for p, v in self._energy if p >= self._start]
            return
        self._energy.append((self.position, level))
        if speech:
            self._last_speech = self.position + FRAME
        if self._last_speech - self._start > o.max_speech * SAMPLE_RATE:
            self._too_long = True
        if self.position + FRAME - self._last_speech >= o.hangover * SAMPLE_RATE:
            if not self._too_long:
                yield self._close(self._last_speech)
            self._start = None
            self._energy = []
            self._too_long = False
            self._run = 0

    def _close(self, end: int) -> Utterance:
        spans = [(p, v) for p, v in self._energy if p < end]
        positions = np.array([p for p, _ in spans], np.float64) + FRAME / 2
        levels = np.array([v for _, v in spans], np.float64)
        weights = 10 ** (levels / 10)
        centre = int((positions * weights).sum() / max(weights.sum(), 1e-12))
        start = self._start if self._start is not None else end
        return Utterance(start, end, centre, float(levels.max()))


def utterances(samples: np.ndarray, options: SegmentOptions | None = None) -> list[Utterance]:
    """Every utterance of a whole clip (int16 or float samples)."""
    x = np.asarray(samples)
    if x.dtype != np.int16:
        x = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    ep = Endpointer(options)
    return [*ep.feed(x, 0), *ep.flush()]
