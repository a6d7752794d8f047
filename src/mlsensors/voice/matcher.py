"""The enrolled commands and matching with an "unknown" answer.

Each command keeps the raw features of its enrolment takes (3–5 usually, up to
MAX_TEMPLATES). Both sides are normalised (voice/normalise.py); a command's centre is
the normalised mean of its takes. A query (one or more windows of the same utterance)
scores the cosine with every centre, s-normalised against the shipped impostor cohort
(voice/snorm.py), and the best window counts. The best command wins if its normalised
score reaches the threshold, else the answer is unknown.

Measured on ../shared/data/voice (docs/voice.md, everything chosen on one half of the
speakers): one speaker enrolling, misses at 1 % false accepts with 3 / 5 takes, the
centre of the takes 2.5 % / 4.3 %, the nearest single take 3.0 % / 7.4 %: one odd take
no longer decides.

The threshold comes with the shipped constants (1 % false accepts per non-target clip on
the derivation data); the confidence 0–100 is 50 at the threshold and rises with the
score.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from mlsensors.errors import InputError
from mlsensors.voice.embed import RAW_DIM
from mlsensors.voice.normalise import DIM, Normaliser, shipped
from mlsensors.voice.snorm import cohort_stats, snorm

MAX_COMMANDS = 16
MAX_TEMPLATES = 10
THRESHOLD_RANGE = (0.0, 20.0)
CONFIDENCE_SCALE = 0.5
NAME = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,31}$")


def confidence(score: float, threshold: float) -> int:
    """0–100: 100 / (1 + e^((τ − s) / 0.5)), 50 at the threshold, 0 below it."""
    if not math.isfinite(score) or score < threshold:
        return 0
    return round(100.0 / (1.0 + math.exp((threshold - score) / CONFIDENCE_SCALE)))


def check_name(name: str) -> str:
    clean = " ".join(str(name).strip().lower().split())
    if not NAME.match(clean):
        raise InputError(f"command name {name!r} must be 1–32 characters: letters, digits, "
                         f"space, '_' or '-', starting with a letter or digit")
    return clean


def check_threshold(threshold: float | None) -> float | None:
    lo, hi = THRESHOLD_RANGE
    if threshold is not None and not lo < float(threshold) < hi:
        raise InputError(f"threshold {threshold} is outside ({lo:g}, {hi:g})")
    return None if threshold is None else float(threshold)


@dataclass(frozen=True, slots=True)
class CommandMatch:
    """The answer for one utterance: `index` −1 and `name` None when unknown."""

    index: int
    name: str | None
    score: float
    """Normalised score of the nearest command (−inf when nothing is enrolled)."""
    confidence: int
    nearest: int
    """The nearest command even when it scored too low (for the near-miss tracker)."""

    @property
    def known(self) -> bool:
        return self.index >= 0


UNKNOWN = CommandMatch(-1, None, -math.inf, 0, -1)


@dataclass(frozen=True, slots=True)
class Queries:
    """Normalised query vectors (..., W, DIM) and their cohort statistics (..., W)."""

    vectors: np.ndarray
    stats: tuple[np.ndarray, np.ndarray]


class CommandSet:
    """Up to MAX_COMMANDS named commands, in enrolment order (the record's index)."""

    def __init__(self, threshold: float | None = None,
                 normaliser: Normaliser | None = None) -> None:
        """`threshold` None: the shipped one (normaliser.threshold)."""
        self._normaliser = normaliser
        self._threshold = check_threshold(threshold)
        self._names: list[str] = []
        self._templates: list[np.ndarray] = []
        self._update()

    @property
    def normaliser(self) -> Normaliser:
        """The given one, else the shipped one (read when first needed)."""
        if self._normaliser is None:
            self._normaliser = shipped()
        return self._normaliser

    @property
    def threshold(self) -> float:
        return self._threshold if self._threshold is not None else self.normaliser.threshold

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._threshold = check_threshold(value)

    @property
    def threshold_override(self) -> float | None:
        """The threshold set by the user, None when the shipped one applies."""
        return self._threshold

    def names(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def templates(self, name: str) -> np.ndarray:
        return self._templates[self.index(name)].copy()

    def index(self, name: str) -> int:
        try:
            return self._names.index(check_name(name))
        except ValueError:
            raise InputError(f"no command {name!r} is enrolled") from None

    def set(self, name: str, features) -> int:
        """Make raw `features` (takes × RAW_DIM) the whole of command `name` (new or
        re-enrolled); its index."""
        name = check_name(name)
        rows = np.asarray(features, np.float32)
        if rows.ndim != 2 or rows.shape[1] != RAW_DIM or len(rows) == 0:
            raise InputError(f"command {name!r} needs 1 or more {RAW_DIM}-D feature rows, "
                             f"got shape {rows.shape}")
        if not np.all(np.isfinite(rows)):
            raise InputError(f"command {name!r}: a feature row holds NaN or infinity")
        rows = rows[-MAX_TEMPLATES:].copy()
        if name in self._names:
            i = self._names.index(name)
            self._templates[i].fill(0.0)
            self._templates[i] = rows
        else:
            if len(self._names) >= MAX_COMMANDS:
                raise InputError(f"{MAX_COMMANDS} commands are enrolled already; erase one")
            self._names.append(name)
            self._templates.append(rows)
            i = len(self._names) - 1
        self._update()
        return i

    def remove(self, name: str) -> None:
        i = self.index(name)
        self._templates[i].fill(0.0)
        del self._names[i], self._templates[i]
        self._update()

    def clear(self) -> None:
        for rows in self._templates:
            rows.fill(0.0)
        self._names, self._templates = [], []
        self._update()

    def _update(self) -> None:
        if not self._templates:
            self._centres = np.zeros((0, DIM), np.float32)
            self._centre_stats = (np.zeros(0, np.float32), np.ones(0, np.float32))
            return
        n = self.normaliser
        centres = np.stack([n(t).mean(axis=0) for t in self._templates])
        self._centres = (centres / np.linalg.norm(centres, axis=1, keepdims=True)
                         ).astype(np.float32)
        self._centre_stats = cohort_stats(self._centres, n.cohort)

    def prepare(self, features: np.ndarray) -> Queries:
        """Raw features (..., W, RAW_DIM) of utterances, W windows each → their
        normalised vectors and cohort statistics (reusable against any CommandSet with the
        same normaliser)."""
        q = self.normaliser(np.asarray(features, np.float32))
        return Queries(q, cohort_stats(q, self.normaliser.cohort))

    def scores(self, queries: Queries | np.ndarray) -> np.ndarray:
        """Normalised score of each command: (..., K) for utterances of W windows each
        ((W, RAW_DIM) or one row gives (K,)); the best window per command counts."""
        if not isinstance(queries, Queries):
            queries = self.prepare(np.atleast_2d(queries))
        q, (mq, sq) = queries.vectors, queries.stats
        z = snorm(q.reshape(-1, DIM) @ self._centres.T, self._centre_stats,
                  (mq.reshape(-1), sq.reshape(-1)))
        return z.reshape(*q.shape[:-1], len(self._centres)).max(axis=-2)

    def match(self, features: np.ndarray) -> CommandMatch:
        if not self._names:
            return UNKNOWN
        z = self.scores(features)
        best = int(np.argmax(z))
        s = float(z[best])
        if not s >= self.threshold:
            return CommandMatch(-1, None, s, 0, best)
        return CommandMatch(best, self._names[best], s, confidence(s, self.threshold), best)
