"""Enrolled voice templates on disk: checksummed, atomic, optional AEAD, true erase."""

from __future__ import annotations

import stat

import numpy as np
import pytest

from mlsensors.envelope import NotEncrypted
from mlsensors.errors import InputError, StateError
from mlsensors.person.gallery_file import write_new_key
from mlsensors.voice.embed import RAW_DIM as DIM
from mlsensors.voice.matcher import MAX_COMMANDS, CommandSet, check_name
from mlsensors.voice.store import TemplateFile


def commands(n=2, seed=0):
    rng = np.random.default_rng(seed)
    cs = CommandSet(threshold=0.2)
    for i in range(n):
        cs.set(f"cmd {i}", rng.normal(size=(5, DIM)))
    return cs


def test_round_trip_mode_and_threshold(tmp_path):
    f = TemplateFile(tmp_path / "v" / "voice.bin")
    cs = commands()
    f.save(cs)
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.path.parent.stat().st_mode) == 0o700
    back = f.load()
    assert back.names() == ["cmd 0", "cmd 1"] and back.threshold == pytest.approx(0.2)
    assert np.allclose(back.templates("cmd 1"), cs.templates("cmd 1"))
    assert not list(f.path.parent.glob(".voice.bin.*"))  # no leftovers of the save


def test_shipped_threshold_is_not_frozen_into_the_file(tmp_path):
    """A set that uses the shipped threshold keeps using it after a save (so new
    constants apply to old enrolments); an override survives."""
    f = TemplateFile(tmp_path / "voice.bin")
    cs = commands()
    cs.threshold = None
    f.save(cs)
    back = f.load()
    assert back.threshold_override is None and back.threshold == back.normaliser.threshold
    with pytest.raises(InputError, match="threshold"):
        cs.threshold = -1.0


def test_encrypted_needs_its_key(tmp_path):
    key = write_new_key(tmp_path / "k")
    f = TemplateFile(tmp_path / "voice.bin", key)
    f.save(commands())
    assert b"cmd 0" not in f.path.read_bytes()
    assert f.load().names() == ["cmd 0", "cmd 1"]
    with pytest.raises(StateError, match="encrypted"):
        TemplateFile(f.path).load()
    other = write_new_key(tmp_path / "k2")
    with pytest.raises(StateError, match="wrong key"):
        TemplateFile(f.path, other).load()


def test_plaintext_under_a_key_is_refused_intact_then_encrypted_in_place(tmp_path, capsys):
    """A key means "this file is sealed": a plaintext store is never read as if it were,
    never moved aside as damage, and `voice encrypt` seals it without losing a take."""
    from mlsensors.cli.main import main

    plain = TemplateFile(tmp_path / "voice.bin")
    plain.save(commands())
    before = plain.path.read_bytes()
    key = write_new_key(tmp_path / "k")
    with pytest.raises(NotEncrypted, match="mlsensors voice encrypt"):
        TemplateFile(plain.path, key).load_or_empty()
    assert plain.path.read_bytes() == before
    assert main(["voice", "encrypt", "--store", str(plain.path), "--key", str(key)]) == 0
    assert "2 command(s) encrypted" in capsys.readouterr().out
    assert b"cmd 0" not in plain.path.read_bytes()
    assert TemplateFile(plain.path, key).load().names() == ["cmd 0", "cmd 1"]


def test_damage_is_named_and_moved_aside(tmp_path):
    f = TemplateFile(tmp_path / "voice.bin")
    f.save(commands())
    data = bytearray(f.path.read_bytes())
    data[40] ^= 0xFF
    f.path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="corrupt"):
        f.load()
    empty, problem = f.load_or_empty()
    assert len(empty) == 0 and "kept as" in problem
    assert list(tmp_path.glob("voice.bin.bad-*"))
    f.path.write_bytes(b"MLSGALRY" + bytes(60))
    with pytest.raises(StateError, match="not an mlsensors voice file"):
        f.load()


def test_erase_scrubs_file_and_moved_aside_copies(tmp_path):
    f = TemplateFile(tmp_path / "voice.bin")
    f.save(commands())
    f.path.write_bytes(b"junk")
    f.load_or_empty()
    f.save(commands())
    erased = f.erase()
    assert len(erased) == 2 and not list(tmp_path.iterdir())


def test_names_limits_and_remove():
    assert check_name("  Lamp   On ") == "lamp on"
    for bad in ("", "x" * 40, "lamp!", "-on"):
        with pytest.raises(InputError):
            check_name(bad)
    cs = commands(MAX_COMMANDS)
    with pytest.raises(InputError, match="16 commands"):
        cs.set("one more", np.ones((1, DIM)))
    cs.remove("cmd 3")
    assert "cmd 3" not in cs.names() and len(cs) == MAX_COMMANDS - 1
    with pytest.raises(InputError, match="NaN"):
        cs.set("bad", np.full((1, DIM), np.nan))
