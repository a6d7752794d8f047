"""The enrolled commands and nearest-centre matching with an "unknown" answer.

Each command keeps the embeddings of its enrolment clips (3–5 usually, up to
MAX_TEMPLATES); its centre is their normalised mean. A query is the command whose centre
is nearest in cosine distance d = 1 − cos, if d < threshold, else unknown. With five
shots the centre beats the nearest single template (0.915 vs 0.874 across speakers,
bench/voice_bench.py), because one odd take no longer decides.

The threshold is calibrated by the bench on one half of the speakers and reported on
the other half; the confidence 0–100 is 50 at the threshold and rises as d shrinks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from mlsensors.errors import InputError
from mlsensors.voice.embed import DIM

MAX_COMMANDS = 16
MAX_TEMPLATES = 10
THRESHOLD = 0.18
"""Largest cosine distance to a command's centre still accepted (bench/voice_bench.py)."""
CONFIDENCE_SCALE = 0.05
NAME = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,31}$")


def confidence(distance: float, threshold: float = THRESHOLD) -> int:
    """0–100: 100 / (1 + e^((d − τ) / 0.05)), 50 at the threshold, 0 beyond it."""
    if not math.isfinite(distance) or distance >= threshold:
        return 0
    return round(100.0 / (1.0 + math.exp((distance - threshold) / CONFIDENCE_SCALE)))


def check_name(name: str) -> str:
    clean = " ".join(str(name).strip().lower().split())
    if not NAME.match(clean):
        raise InputError(f"command name {name!r} must be 1–32 characters: letters, digits, "
                         f"space, '_' or '-', starting with a letter or digit")
    return clean


@dataclass(frozen=True, slots=True)
class CommandMatch:
    """The answer for one utterance: `index` −1 and `name` None when unknown."""

    index: int
    name: str | None
    distance: float
    confidence: int
    nearest: int
    """The nearest command even when it is too far (for the near-miss tracker); −1 if none."""

    @property
    def known(self) -> bool:
        return self.index >= 0


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-9)


class CommandSet:
    """Up to MAX_COMMANDS named commands, in enrolment order (the record's index)."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        if not 0.0 < threshold < 2.0:
            raise InputError(f"threshold {threshold} is outside (0, 2)")
        self.threshold = float(threshold)
        self._names: list[str] = []
        self._templates: list[np.ndarray] = []
        self._centres = np.zeros((0, DIM), np.float32)

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

    def set(self, name: str, embeddings) -> int:
        """Make `embeddings` the whole of command `name` (new or re-enrolled); its index."""
        name = check_name(name)
        rows = np.asarray(embeddings, np.float32)
        if rows.ndim != 2 or rows.shape[1] != DIM or len(rows) == 0:
            raise InputError(f"command {name!r} needs 1 or more {DIM}-D embeddings, got "
                             f"shape {rows.shape}")
        if not np.all(np.isfinite(rows)):
            raise InputError(f"command {name!r}: an embedding holds NaN or infinity")
        rows = _unit(rows[-MAX_TEMPLATES:]).astype(np.float32)
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
        self._centres.fill(0.0)
        self._centres = (_unit(np.stack([t.mean(axis=0) for t in self._templates]))
                         .astype(np.float32) if self._templates
                         else np.zeros((0, DIM), np.float32))

    def match(self, embedding: np.ndarray) -> CommandMatch:
        if not self._names:
            return CommandMatch(-1, None, math.inf, 0, -1)
        query = _unit(np.asarray(embedding, np.float32))
        distances = 1.0 - self._centres @ query
        best = int(np.argmin(distances))
        d = float(distances[best])
        if d >= self.threshold:
            return CommandMatch(-1, None, d, 0, best)
        return CommandMatch(best, self._names[best], d, confidence(d, self.threshold), best)
