"""Derive the voice normaliser's shipped constants (src/mlsensors/voice/normaliser.npz).

Everything the matcher ships that comes from data is made here, by one function
(`derive_on`) that bench/voice_bench.py also runs on one half of the speakers to report
on the other:

- mean vector and whitening (voice/normalise.py) from the raw DS-CNN features of every
  Speech Commands clip with speech (10 words, _unknown_; ../shared/data/voice);
- a cohort of 200 impostor vectors for s-norm, drawn from every clip with speech
  (Speech Commands and the Picovoice wake-word clips, _silence_ left out);
- the threshold: on one-speaker enrolments (every speaker/word with ≥ shots + 1 takes,
  3 and 5 takes, each rotation of the takes), the normalised score that 1 % of the
  non-target clips (other words, other speakers, silence, wake-word phrases; cohort
  clips left out) reach.

No single clip is chosen by hand; the split into halves is a hash of the speaker (of
the file name where there is no speaker). The data's licences: Speech Commands CC BY
4.0 (Warden 2018), Picovoice wake-word benchmark Apache-2.0; docs/voice.md credits
them for the shipped constants.

    PYTHONPATH=src .venv/bin/python bench/voice_calibrate.py [--data ../shared/data]
        [--write]     # write normaliser.npz and print its SHA-256 to pin
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsensors.voice.clips import read_clip
from mlsensors.voice.embed import CLASSES, RAW_DIM, CommandEmbedder
from mlsensors.voice.matcher import CommandSet
from mlsensors.voice.normalise import COHORT, CONSTANTS, Normaliser, derive, save
from mlsensors.voice.sensor import SHIFTS, VoiceSensor

WORDS = CLASSES[:10]
FA_TARGET = 0.01
CENTRE = SHIFTS.index(0.0)


def speaker_of(path: Path) -> str | None:
    """Speech Commands names are `[word_]speaker_nohash_n`; others have no speaker."""
    if "_nohash_" not in path.name:
        return None
    return path.name.split("_nohash_")[0].split("_")[-1]


def half(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 2


@dataclass(frozen=True, eq=False)
class Corpus:
    words: np.ndarray
    """Folder name: a Speech Commands class or `ww_<keyword>`."""
    speakers: np.ndarray
    folds: np.ndarray
    """0 or 1: the speaker's half (the file's for clips without a speaker)."""
    raw: np.ndarray
    """(N, len(SHIFTS), RAW_DIM) raw features; zeros where no speech was found."""
    speech: np.ndarray
    """The endpointer found speech."""
    voiced: np.ndarray
    """... and it has a voice (voice/voicing.py): the sensor matches only these."""
    paths: list[Path]

    @property
    def commands_data(self) -> np.ndarray:
        return np.array([not w.startswith("ww_") for w in self.words])


def load(data: Path, embedder: CommandEmbedder) -> Corpus:
    root = data / "voice"
    found = [(f.name, p) for f in sorted((root / "speech_commands").iterdir()) if f.is_dir()
             for p in sorted(f.glob("*.flac"))]
    found += [(f"ww_{f.name}", p) for f in sorted((root / "wake_word").iterdir())
              if f.is_dir() for p in sorted(f.glob("*.flac"))]
    sensor = VoiceSensor(None, None, CommandSet(), embedder)
    raw = np.zeros((len(found), len(SHIFTS), RAW_DIM), np.float32)
    speech = np.zeros(len(found), bool)
    voiced = np.zeros(len(found), bool)
    for i, (_, p) in enumerate(found):
        clip = read_clip(p)
        got = sensor.embed_clip(clip, SHIFTS)
        if got is not None:
            raw[i], speech[i] = got[0], True
            voiced[i] = sensor.voiced(clip.samples[got[1].start:got[1].end])
    speakers = [speaker_of(p) for _, p in found]
    folds = [half(s if s is not None else p.name) for s, (_, p) in zip(speakers, found,
                                                                        strict=True)]
    return Corpus(np.array([w for w, _ in found]), np.array(speakers, object),
                  np.array(folds), raw, speech, voiced, [p for _, p in found])


def derive_on(c: Corpus, mask: np.ndarray, seed: int = 0, fa: float = FA_TARGET,
              windows=SHIFTS) -> Normaliser:
    """The constants from the clips in `mask` alone (threshold included)."""
    white = np.where(mask & c.speech & c.commands_data & (c.words != "_silence_"))[0]
    pool = np.where(mask & c.voiced & (c.words != "_silence_"))[0]
    cohort = np.sort(np.random.default_rng(seed).choice(pool, COHORT, replace=False))
    n = derive(c.raw[white, CENTRE], c.raw[cohort, CENTRE])
    in_cohort = np.zeros(len(c.words), bool)
    in_cohort[cohort] = True
    trials = one_speaker(c, n, mask & ~in_cohort, shots=(3, 5), windows=windows)
    return Normaliser(n.mean, n.projection, n.cohort, threshold_at(trials, fa))


@dataclass(frozen=True, eq=False)
class Trial:
    speaker: str
    word: str
    shots: int
    targets: np.ndarray
    """Normalised scores of the speaker's other takes of the word."""
    nontargets: np.ndarray
    """Scores of every non-target clip in the mask (−inf: no speech found)."""


def one_speaker(c: Corpus, n: Normaliser, mask: np.ndarray, shots=(5,), windows=SHIFTS,
                nearest: bool = False) -> list[Trial]:
    """Each speaker/word in `mask` with ≥ k + 1 takes, k in `shots`, enrols k of them (each
    rotation of the takes once) and scores the rest and every non-target clip."""
    cols = [SHIFTS.index(s) for s in windows]
    probe = CommandSet(normaliser=n)
    queries = probe.prepare(c.raw[:, cols])
    pairs: dict[tuple[str, str], list[int]] = {}
    for i in np.where(mask & c.speech)[0]:
        if c.words[i] in WORDS and c.speakers[i] is not None:
            pairs.setdefault((c.speakers[i], c.words[i]), []).append(int(i))
    out = []
    for (s, w), idx in sorted(pairs.items()):
        non = mask & (c.words != w)
        for k in shots:
            if len(idx) < k + 1:
                continue
            for r in range(len(idx)):
                order = idx[r:] + idx[:r]
                cs = CommandSet(normaliser=n)
                if nearest:
                    for j, t in enumerate(order[:k]):
                        cs.set(f"take {j}", c.raw[[t], CENTRE])
                else:
                    cs.set(w, c.raw[order[:k], CENTRE])
                z = np.where(c.voiced, cs.scores(queries).max(axis=-1), -np.inf)
                out.append(Trial(s, w, k, z[order[k:]], z[non]))
    return out


def threshold_at(trials: list[Trial], fa: float) -> float:
    """The lowest score that at most `fa` of the non-target scores reach or pass."""
    nons = np.sort(np.concatenate([t.nontargets for t in trials]))[::-1]
    k = int(fa * len(nons))
    return float(np.nextafter(nons[k], np.inf)) if k < len(nons) else float(nons[-1])


def rates(trials: list[Trial], threshold: float) -> tuple[float, float, int, int]:
    """(misses, false accepts per non-target clip, targets, non-target trials)."""
    t = np.concatenate([x.targets for x in trials])
    nn = np.concatenate([x.nontargets for x in trials])
    return float(np.mean(t < threshold)), float(np.mean(nn >= threshold)), len(t), len(nn)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2]
                    / "shared" / "data")
    ap.add_argument("--write", action="store_true", help=f"write {CONSTANTS.name}")
    args = ap.parse_args()
    corpus = load(args.data, CommandEmbedder())
    n = derive_on(corpus, np.ones(len(corpus.words), bool))
    print(f"threshold {n.threshold:.4f}; cohort {len(n.cohort)}; from {len(corpus.words)} "
          f"clips", file=sys.stderr)
    if args.write:
        digest = save(n, CONSTANTS)
        print(f"wrote {CONSTANTS}; pin CONSTANTS_SHA256 = {digest!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
