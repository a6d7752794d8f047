"""Gallery matching and the gallery file: format, atomic save, encryption, garbage, erase."""

from __future__ import annotations

import itertools
import os
import stat

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsensors.cli.main import main
from mlsensors.errors import InputError, StateError
from mlsensors.person.gallery import THRESHOLD, UNKNOWN, Gallery, confidence
from mlsensors.person.gallery_file import (
    GALLERY,
    GalleryFile,
    decode,
    default_gallery_path,
    encode,
    read_key,
    write_new_key,
)


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, d: float, seed: int = 99) -> np.ndarray:
    """A vector at exactly distance d from v."""
    u = np.random.default_rng(seed).normal(size=128)
    u -= u.dot(v) * v / v.dot(v)
    return (v + d * u / np.linalg.norm(u)).astype(np.float32)


def full_gallery() -> Gallery:
    g = Gallery()
    for i in range(8):
        g.set(i, [vec(i), near(vec(i), 0.2, seed=i)])
    return g


def test_confidence_is_monotonic_and_anchored():
    ds = np.linspace(0, 1, 201)
    cs = [confidence(float(d)) for d in ds]
    assert all(a >= b for a, b in itertools.pairwise(cs))
    assert confidence(0.0) == 100
    assert confidence(0.31) == 95
    assert confidence(THRESHOLD - 1e-9) == 50
    assert confidence(THRESHOLD) == 0 and confidence(float("nan")) == 0


def test_match_nearest_within_threshold_else_unknown():
    g = full_gallery()
    m = g.match(near(vec(3), 0.3))
    assert m.id == 3 and abs(m.distance - 0.3) < 1e-4 and m.confidence == confidence(m.distance)
    far = g.match(near(vec(3), THRESHOLD + 0.05))
    assert far.id == UNKNOWN and far.confidence == 0 and not far.known
    assert Gallery().match(vec(1)).id == UNKNOWN


def test_ids_are_checked_and_samples_capped():
    g = Gallery(num_ids=8, max_per_id=3)
    with pytest.raises(InputError, match="outside 0–7"):
        g.set(8, [vec(1)])
    with pytest.raises(InputError, match="128 values"):
        g.add(0, np.zeros(5))
    with pytest.raises(InputError, match="NaN"):
        g.add(0, np.full(128, np.nan))
    assert Gallery(num_ids=20).check_id(19) == 19


def test_a_sample_beyond_the_limit_is_refused_never_dropped():
    g = Gallery(num_ids=8, max_per_id=3)
    for s in range(3):
        g.add(0, vec(s))
    with pytest.raises(InputError, match="already holds 3 samples"):
        g.add(0, vec(3))
    assert [v.tobytes() for v in g.embeddings(0)] == [vec(s).tobytes() for s in range(3)]
    with pytest.raises(InputError, match="at most 3 samples; 4 given"):
        g.set(1, [vec(s) for s in range(4)])
    assert 1 not in g.ids()
    g.set(0, [vec(9)])  # replacing is how an ID is learnt again
    assert len(g.embeddings(0)) == 1


def test_round_trip_plain_and_sealed(tmp_path):
    g = full_gallery()
    key_file = write_new_key(tmp_path / "key")
    for key in (None, key_file):
        gf = GalleryFile(tmp_path / "sub" / "g.bin", key)
        gf.save(g)
        assert stat.S_IMODE(gf.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(gf.path.parent.stat().st_mode) == 0o700
        back = gf.load()
        assert back.ids() == g.ids() and back.threshold == g.threshold
        for i in g.ids():
            assert np.array_equal(back.embeddings(i), g.embeddings(i))
        assert sorted(p.name for p in gf.path.parent.iterdir()) == ["g.bin"]
    sealed = (tmp_path / "sub" / "g.bin").read_bytes()
    assert vec(0).tobytes()[:16] not in sealed
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_default_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_gallery_path() == tmp_path / "mlsensors" / "gallery.bin"


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b"", "not an mlsensors gallery"),
    (lambda b: b"P5\n92 112\n255\n" + b"\0" * 50, "not an mlsensors gallery"),
    (lambda b: b[:40], "truncated"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"x", "extra bytes"),
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "corrupt"),
    (lambda b: b[:8] + b"\x09" + b[9:], "version 9"),
])
def test_garbage_files_give_clear_errors(damage, message):
    data = encode(full_gallery())
    with pytest.raises(StateError, match=message):
        decode(damage(data), name="g.bin")


def test_wrong_or_missing_key(tmp_path):
    gf = GalleryFile(tmp_path / "g.bin", write_new_key(tmp_path / "k1"))
    gf.save(full_gallery())
    with pytest.raises(StateError, match="wrong key"):
        GalleryFile(gf.path, write_new_key(tmp_path / "k2")).load()
    with pytest.raises(StateError, match="encrypted; give its key"):
        GalleryFile(gf.path).load()
    (tmp_path / "bad").write_text("not hex")
    with pytest.raises(StateError, match="64 hex digits"):
        read_key(tmp_path / "bad")
    with pytest.raises(StateError, match="already exists"):
        write_new_key(tmp_path / "k1")


def test_bad_file_is_moved_aside_not_lost(tmp_path):
    gf = GalleryFile(tmp_path / "g.bin")
    junk = b"MLSGALRY" + os.urandom(100)
    gf.path.write_bytes(junk)
    with pytest.raises(StateError):
        gf.load()
    assert gf.path.read_bytes() == junk
    gallery, problem = gf.load_or_empty()
    assert len(gallery) == 0 and "kept as" in problem
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("g.bin.bad-")]
    assert len(kept) == 1 and kept[0].read_bytes() == junk and not gf.path.exists()
    gf.path.write_bytes(junk)
    gf.load_or_empty()
    assert len([p for p in tmp_path.iterdir() if ".bad-" in p.name]) == 2


def test_save_scrubs_previous_version_and_erase_scrubs_file(tmp_path):
    gf = GalleryFile(tmp_path / "g.bin")
    gf.save(full_gallery())
    spy = tmp_path / "spy"
    os.link(gf.path, spy)  # another name for the old inode: shows what happens to its bytes
    old = spy.read_bytes()
    gf.save(Gallery())
    assert spy.read_bytes() != old and len(spy.read_bytes()) == len(old)
    assert vec(0).tobytes()[:16] not in spy.read_bytes()
    spy.unlink()
    gf.save(full_gallery())
    os.link(gf.path, spy)
    assert gf.erase() == [gf.path]
    assert not gf.path.exists() and vec(0).tobytes()[:16] not in spy.read_bytes()
    assert gf.erase() == []


def test_erase_takes_files_set_aside_and_leftovers_too(tmp_path):
    gf = GalleryFile(tmp_path / "g.bin")
    gf.path.write_bytes(b"MLSGALRY" + vec(0).tobytes())
    gf.load_or_empty()
    gf.save(full_gallery())
    (tmp_path / ".g.bin.tmp-999").write_bytes(vec(1).tobytes())
    (tmp_path / "other.txt").write_text("not ours")
    assert len(gf.erase()) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt"]


def test_cli_list_and_erase_on_garbage(tmp_path, capsys):
    path = tmp_path / "g.bin"
    path.write_bytes(b"garbage")
    assert main(["id", "list", "--gallery", str(path)]) == 1
    err = capsys.readouterr().err
    assert "not an mlsensors gallery" in err and "Traceback" not in err
    assert path.read_bytes() == b"garbage"
    GalleryFile(path).save(full_gallery())
    assert main(["id", "list", "--gallery", str(path), "--json"]) == 0
    assert '"samples": 2' in capsys.readouterr().out
    assert main(["id", "erase", "--gallery", str(path)]) == 0
    assert not path.exists()

_VALID = encode(full_gallery())
_KEY = bytes(range(32))
_SEALED = encode(full_gallery(), _KEY)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda b: GALLERY.magic + b"\x01" + b),
    st.integers(0, len(_VALID)).map(lambda n: _VALID[:n]),
))
def test_any_bytes_give_a_gallery_or_a_state_error(data):
    try:
        decode(data, _KEY)
    except StateError as e:
        assert str(e).startswith("gallery")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(_SEALED) - 1), st.integers(1, 255), st.booleans())
def test_any_flipped_byte_is_caught(pos, flip, sealed):
    data = bytearray(_SEALED if sealed else _VALID)
    pos %= len(data)
    data[pos] ^= flip
    with pytest.raises(StateError):
        decode(bytes(data), _KEY)


def test_checksummed_but_wrong_payload_is_corrupt_not_a_crash():
    import hashlib
    import struct

    payload = struct.pack("<HHHHdI", 8, 128, 8, 0, 0.52, 1) + struct.pack("<H", 9)
    payload += b"\0" * 512
    data = struct.pack("<8sBBHI", GALLERY.magic, 1, 0, 0, len(payload)) + payload
    with pytest.raises(StateError, match=r"corrupt.*outside 0–7"):
        decode(data + hashlib.sha256(data).digest())


_KILLED_SAVE = """
import os, sys
import numpy as np
from mlsensors.person import gallery_file
from mlsensors.person.gallery import Gallery

def vec(seed):
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)

path, when = sys.argv[1], sys.argv[2]
old = Gallery()
old.set(0, [vec(0)])
gallery_file.GalleryFile(path).save(old)
real = os.replace

def replace(src, dst):
    if when == "before":
        os.kill(os.getpid(), 9)
    real(src, dst)
    os.kill(os.getpid(), 9)

gallery_file.os.replace = replace
new = Gallery()
new.set(1, [vec(1)])
gallery_file.GalleryFile(path).save(new)
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_save_killed_at_the_rename_leaves_no_name_holding_replaced_embeddings(tmp_path,
                                                                               when):
    import subprocess
    import sys

    path = tmp_path / "g.bin"
    proc = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(path), when],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    replaced = vec(0).tobytes()[:32]
    for p in tmp_path.iterdir():
        if when == "after" or p.name != "g.bin":
            assert replaced not in p.read_bytes(), f"{p.name} still holds the old ID"
    # the gallery is the old one or the new one, whole; a temp file of the killed save
    # (the new embeddings) is scrubbed by the next load
    assert GalleryFile(path).load().ids() == ([0] if when == "before" else [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.bin"]


def test_a_live_saver_s_temp_file_is_left_alone_on_load(tmp_path):
    import subprocess
    import sys

    gf = GalleryFile(tmp_path / "g.bin")
    gf.save(full_gallery())
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".g.bin.tmp-{sleeper.pid}"
        live.write_bytes(b"being written")
        dead = tmp_path / ".g.bin.old-999999999"
        dead.write_bytes(vec(5).tobytes())
        gf.load()
        assert live.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    gf.load()
    assert not live.exists()


def test_a_symlinked_gallery_never_lets_a_save_or_erase_touch_its_target(tmp_path):
    target = tmp_path / "bashrc"
    target.write_text("export KEEP=1\n")
    link = tmp_path / "g.bin"
    link.symlink_to(target)
    GalleryFile(link).save(full_gallery())
    assert target.read_text() == "export KEEP=1\n" and not link.is_symlink()
    link.unlink()
    link.symlink_to(target)
    GalleryFile(link).erase()
    assert target.read_text() == "export KEEP=1\n" and not os.path.lexists(link)


def test_a_plaintext_gallery_is_refused_under_a_key_and_can_be_encrypted(tmp_path, capsys):
    path = tmp_path / "g.bin"
    GalleryFile(path).save(full_gallery())
    spy = tmp_path / "spy"
    os.link(path, spy)  # shows what becomes of the plaintext's bytes
    key = write_new_key(tmp_path / "k")
    for argv in (["id", "list"], ["id", "match", "x.jpg"]):
        assert main([*argv, "--gallery", str(path), "--key", str(key)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "not encrypted, but a key was given" in err
        assert f"mlsensors id encrypt --gallery {path} --key {key}" in err
    with pytest.raises(StateError, match="not encrypted"):
        GalleryFile(path, key).load_or_empty()
    assert path.read_bytes() == spy.read_bytes()  # refused, not moved aside
    assert main(["id", "encrypt", "--gallery", str(path), "--key", str(key)]) == 0
    assert GalleryFile(path, key).load().ids() == full_gallery().ids()
    assert vec(0).tobytes()[:16] not in path.read_bytes() + spy.read_bytes()
    assert main(["id", "encrypt", "--gallery", str(path), "--key", str(key)]) == 1
    assert "encrypted already" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["gallery", "key"])
@pytest.mark.parametrize("what", ["fifo", "/dev/zero"])
def test_a_fifo_or_a_device_is_a_one_line_error_not_a_hang(tmp_path, where, what):
    import subprocess
    import sys

    path = what
    if what == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    gallery = path if where == "gallery" else str(tmp_path / "g.bin")
    args = ["id", "list", "--gallery", gallery]
    if where == "key":
        args += ["--key", path]
    proc = subprocess.run([sys.executable, "-m", "mlsensors", *args], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "not a regular file" in err, err
