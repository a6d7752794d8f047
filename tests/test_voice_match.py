"""Normalising and scoring command embeddings: pure stages, synthetic vectors, no model."""

from __future__ import annotations

import numpy as np
import pytest

from mlsensors.errors import InputError, ModelError
from mlsensors.voice.embed import PLAIN, RAW_DIM
from mlsensors.voice.matcher import CommandSet, confidence
from mlsensors.voice.normalise import (
    CONSTANTS,
    CONSTANTS_SHA256,
    DIM,
    WHITE_DIM,
    Normaliser,
    derive,
    read,
    save,
    shipped,
    whitening,
)
from mlsensors.voice.snorm import cohort_stats, snorm


def raw_rows(n, seed=0, scale=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, RAW_DIM)).astype(np.float32)
    if scale is not None:
        x *= scale
    return x


def test_whitening_gives_unit_variance_on_its_own_data():
    scale = np.linspace(0.05, 3.0, RAW_DIM).astype(np.float32)
    x = raw_rows(4000, scale=scale)
    mean, projection = whitening(x, dims=WHITE_DIM, shrink=1e-6)
    y = (x - mean) @ projection
    assert projection.shape == (RAW_DIM, WHITE_DIM)
    assert np.allclose(np.var(y, axis=0), 1.0, atol=0.02)
    assert np.allclose(np.cov(y.T), np.eye(WHITE_DIM), atol=0.05)
    # it keeps the directions of most spread: the loudest raw feature is in the span
    loud = np.zeros(RAW_DIM, np.float32)
    loud[-1] = 1.0
    assert np.linalg.norm(loud @ projection) > 0.1


def test_normaliser_output_is_unit_and_halves_weigh_the_same():
    n = derive(raw_rows(600), raw_rows(300, seed=1))
    v = n(raw_rows(5, seed=2))
    assert v.shape == (5, DIM) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(v[:, :WHITE_DIM], axis=1) ** 2, 0.5, atol=1e-5)
    assert n.cohort.shape[1] == DIM and len(n.cohort) == 200
    with pytest.raises(ModelError, match="shapes"):
        Normaliser(n.mean[:10], n.projection, n.cohort, 1.0)


def test_constants_file_is_pinned(tmp_path):
    n = derive(raw_rows(600), raw_rows(300, seed=1), threshold=2.5)
    path = tmp_path / "n.npz"
    digest = save(n, path)
    back = read(path, digest)
    assert back.threshold == pytest.approx(2.5) and np.array_equal(back.cohort, n.cohort)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="pinned SHA-256"):
        read(path, digest)


def test_shipped_constants_load_and_match_their_pin():
    import hashlib

    assert hashlib.sha256(CONSTANTS.read_bytes()).hexdigest() == CONSTANTS_SHA256
    n = shipped()
    assert 0.0 < n.threshold < 20.0 and n.cohort.shape == (200, DIM)


def test_snorm_measures_scores_against_each_sides_impostors():
    rng = np.random.default_rng(3)
    cohort = rng.normal(size=(50, 8)).astype(np.float32)
    commands = rng.normal(size=(3, 8)).astype(np.float32)
    queries = rng.normal(size=(4, 8)).astype(np.float32)
    sc, sq = cohort_stats(commands, cohort), cohort_stats(queries, cohort)
    raw = queries @ commands.T
    z = snorm(raw, sc, sq)
    # one standard deviation above what impostors get from the command is 1 on that
    # side (the query's side is silenced here by an infinite spread): half of the mean
    above = np.broadcast_to(sc[0] + sc[1], (4, 3))
    assert np.allclose(snorm(above, sc, (np.zeros(4), np.full(4, np.inf))), 0.5)
    # a command that gives everybody 0.3 more (a "generous" one) gains nothing
    generous = (sc[0] + 0.3, sc[1])
    assert np.allclose(snorm(raw + 0.3, generous, (sq[0] + 0.3, sq[1])), z, atol=1e-5)
    # a higher raw score is a higher normalised score
    assert np.all(snorm(raw + 0.1, sc, sq) > z)


def commands_near(centres, normaliser, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    cs = CommandSet(normaliser=normaliser)
    for i, c in enumerate(centres):
        cs.set(f"cmd {i}", c + noise * rng.normal(size=(5, RAW_DIM)))
    return cs


def test_matcher_finds_the_enrolled_command_and_refuses_strangers():
    n = derive(raw_rows(800), raw_rows(400, seed=1), threshold=3.0)
    centres = raw_rows(3, seed=5)
    cs = commands_near(centres, n)
    for i, c in enumerate(centres):
        m = cs.match(c + 0.05 * raw_rows(1, seed=10 + i)[0])
        assert m.known and m.index == i and m.name == f"cmd {i}" and m.confidence > 50
    stranger = cs.match(raw_rows(1, seed=99)[0])
    assert not stranger.known and stranger.confidence == 0 and stranger.nearest >= 0
    assert stranger.score < cs.threshold


def test_best_window_counts():
    n = derive(raw_rows(800), raw_rows(400, seed=1), threshold=3.0)
    centres = raw_rows(2, seed=5)
    cs = commands_near(centres, n)
    good = centres[0] + 0.05 * raw_rows(1, seed=11)[0]
    off = raw_rows(2, seed=12)
    both = cs.scores(np.stack([off[0], good, off[1]]))
    assert both.shape == (2,)
    assert both[0] == pytest.approx(cs.scores(good)[0], abs=1e-4)
    batch = cs.scores(cs.prepare(np.stack([np.stack([off[0], good]), np.stack([off[1], off[0]])])))
    assert batch.shape == (2, 2) and batch[0, 0] > batch[1, 0]


def test_plain_part_is_the_last_layer_and_the_probabilities():
    assert len(PLAIN) == 64 + 12 and PLAIN[-1] == RAW_DIM - 1


def test_confidence_is_50_at_the_threshold_and_rises():
    assert confidence(2.0, 2.0) == 50
    assert confidence(1.99, 2.0) == 0
    assert confidence(3.0, 2.0) > confidence(2.5, 2.0) > 50
    assert confidence(float("nan"), 2.0) == 0


def test_bad_templates_are_refused():
    cs = CommandSet(normaliser=derive(raw_rows(600), raw_rows(300, seed=1)))
    with pytest.raises(InputError, match=f"{RAW_DIM}-D"):
        cs.set("x", np.ones((2, 76)))
    with pytest.raises(InputError, match="NaN"):
        cs.set("x", np.full((1, RAW_DIM), np.nan))
    with pytest.raises(InputError, match="outside"):
        CommandSet(threshold=50.0)


def test_raw_features_are_unit_parts_and_half_weight_probabilities():
    from mlsensors.voice.embed import CLASSES, LAYERS, features

    rng = np.random.default_rng(0)
    maps = [np.abs(rng.normal(size=(25, 5, 64))).astype(np.float32) for _ in LAYERS]
    probs = np.full(len(CLASSES), 1 / len(CLASSES), np.float32)
    f = features(maps, probs)
    assert f.shape == (RAW_DIM,)
    parts = np.split(f[:-len(CLASSES)], len(LAYERS) + 1)
    assert np.allclose([np.linalg.norm(p) for p in parts], 1.0, atol=1e-5)
    assert np.linalg.norm(f[-len(CLASSES):]) == pytest.approx(0.5, abs=1e-5)
    # a word that moves differently over time changes the spread part only
    still = [m.copy() for m in maps]
    still[-1][:] = maps[-1].mean(axis=0)
    g = features(still, probs)
    assert not np.allclose(g[64 * len(LAYERS):64 * (len(LAYERS) + 1)],
                           f[64 * len(LAYERS):64 * (len(LAYERS) + 1)])
