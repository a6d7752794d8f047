"""Score normalisation against an impostor cohort (symmetric s-norm), pure functions.

A cosine between two vectors means different things for different words and voices: a
command whose takes are all alike, or a query that resembles everything, scores high
against anything. S-norm measures each score against the same vector's scores with a
cohort of impostors (clips of many other words and speakers, shipped as constants in
voice/normalise.py): how many standard deviations above a stranger it is, from the
command's side and from the query's side, averaged. That one number has the same
meaning for every enrolment, so one threshold serves every speaker and word: one
speaker, misses at 1 % false accepts with 3 / 5 takes 3.6 % / 5.5 % → 2.5 % / 4.3 %
(docs/voice.md).
"""

from __future__ import annotations

import numpy as np


def cohort_stats(vectors: np.ndarray, cohort: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each vector's cosines with the cohort."""
    s = np.asarray(vectors, np.float32) @ cohort.T
    return s.mean(axis=-1), np.maximum(s.std(axis=-1), 1e-6)


def snorm(scores: np.ndarray, command: tuple[np.ndarray, np.ndarray],
          query: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """scores (Q, K) of Q queries against K commands → normalised scores (Q, K)."""
    (mc, sc), (mq, sq) = command, query
    return ((scores - mc[None, :]) / sc[None, :] + (scores - mq[:, None]) / sq[:, None]) / 2
