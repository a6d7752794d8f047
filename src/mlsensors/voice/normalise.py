"""Raw DS-CNN features → the vector commands are compared in, with shipped constants.

Two parts, concatenated with equal weight and scaled to unit length, so a cosine is the
mean of two cosines:

- *whitened*: the raw features minus a fixed mean vector, projected on the 128 main
  directions of their spread and scaled so each has unit variance (shrunk by `SHRINK`
  so that directions of almost no spread are not blown up). This is what makes one
  person's takes of one word stand out from everything else: one speaker, 3 takes,
  misses at 1 % false accepts 9.8 % → 2.5 % with s-norm (docs/voice.md).
- *plain*: the last layer's mean and the class probabilities as they are. Speaker-
  independent: it keeps a command enrolled by one person working for another (across
  speakers, 10 words, 0.896 with the whitened part alone, 0.913 with both).

The constants (mean, projection, a cohort of 200 impostor vectors for score
normalisation, and the threshold) are derived once by `derive` from clips that are
neither the user's nor the evaluation's, shipped in `normaliser.npz` beside this module,
and pinned by SHA-256 here. No back-propagation, nothing learnt on the device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from mlsensors.errors import ModelError
from mlsensors.voice.embed import PLAIN, RAW_DIM

WHITE_DIM = 128
DIM = WHITE_DIM + len(PLAIN)
SHRINK = 3e-3
"""Added to every variance before whitening (the raw vectors' total variance is ~1.4)."""
COHORT = 200
CONSTANTS = Path(__file__).with_name("normaliser.npz")
CONSTANTS_SHA256 = "e31c3512e30b85845e4c287137a156802a2336993eb851c43dcffefefe45cf0c"


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-9)


@dataclass(frozen=True, eq=False)
class Normaliser:
    mean: np.ndarray
    """(RAW_DIM,) subtracted before whitening."""
    projection: np.ndarray
    """(RAW_DIM, WHITE_DIM) principal directions / √(variance + SHRINK)."""
    cohort: np.ndarray
    """(COHORT, DIM) normalised vectors of clips from many speakers and words: what an
    impostor looks like, for score normalisation (voice/snorm.py)."""
    threshold: float
    """The normalised score accepted as a command: 1 % false accepts per non-target clip
    on the derivation data's one-speaker enrolments."""

    def __post_init__(self) -> None:
        if self.mean.shape != (RAW_DIM,) or self.projection.shape != (RAW_DIM, WHITE_DIM) \
                or self.cohort.ndim != 2 or self.cohort.shape[1] != DIM:
            raise ModelError("voice normaliser constants have the wrong shapes")

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Raw features (..., RAW_DIM) → unit vectors (..., DIM)."""
        raw = np.asarray(raw, np.float32)
        white = _unit((raw - self.mean) @ self.projection)
        plain = _unit(raw[..., PLAIN])
        return (_unit(np.concatenate([white, plain], axis=-1))).astype(np.float32)


def whitening(raw: np.ndarray, dims: int = WHITE_DIM,
              shrink: float = SHRINK) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection) of raw feature rows: pure, deterministic."""
    x = np.asarray(raw, np.float64)
    mean = x.mean(axis=0)
    cov = np.cov((x - mean).T) + shrink * np.eye(x.shape[1])
    values, vectors = np.linalg.eigh(cov)
    values, vectors = values[-dims:], vectors[:, -dims:]
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(dims)])
    return mean.astype(np.float32), (vectors * signs / np.sqrt(values)).astype(np.float32)


def derive(speech: np.ndarray, impostors: np.ndarray, threshold: float = 0.0,
           seed: int = 0) -> Normaliser:
    """The constants from raw features: `speech` (rows of many words and speakers) gives
    the mean and whitening, COHORT rows drawn from `impostors` the cohort. The threshold
    is chosen afterwards on enrolments with these constants (bench/voice_calibrate.py)."""
    mean, projection = whitening(speech)
    partial = Normaliser(mean, projection, np.zeros((1, DIM), np.float32), threshold)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(impostors), min(COHORT, len(impostors)), replace=False)
    return Normaliser(mean, projection, partial(np.asarray(impostors)[np.sort(pick)]),
                      threshold)


def save(n: Normaliser, path: Path) -> str:
    """Write the constants; their SHA-256 (to pin in CONSTANTS_SHA256)."""
    with open(path, "wb") as f:
        np.savez(f, mean=n.mean, projection=n.projection, cohort=n.cohort,
                 threshold=np.float32(n.threshold))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read(path: Path, sha256: str | None = None) -> Normaliser:
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ModelError(f"{path.name} does not match its pinned SHA-256; reinstall mlsensors")
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return Normaliser(z["mean"], z["projection"], z["cohort"], float(z["threshold"]))


@cache
def shipped() -> Normaliser:
    """The constants shipped with mlsensors, checked against their pinned hash."""
    if not CONSTANTS.is_file():
        raise ModelError(f"{CONSTANTS.name} is missing from the mlsensors package; reinstall")
    return read(CONSTANTS, CONSTANTS_SHA256)
