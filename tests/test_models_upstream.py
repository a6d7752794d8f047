"""The upstream files' acquisition (YuNet, the voice DS-CNN: pinned upstream URL, a mirror,
a folder), `models list|verify` over every entry, and the face sensor's two
states: with YuNet, and on a machine that reaches only the package index (issue 11);
standard output carries results only, even while models are fetched (issue 12 item 6)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from mlsensors.errors import ModelError
from mlsensors.models import MANIFEST, ModelStore
from mlsensors.models.manifest import DETECTOR_MODELS, PACKAGED, UPSTREAM, YUNET_UPSTREAM
from mlsensors.models.store import download

YUNET = DETECTOR_MODELS["yunet"]
SHARED_MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "models"


@pytest.fixture
def served(tmp_path):
    """A local HTTP server over a folder (what a mirror or the upstream host would be);
    yields (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _shared_yunet() -> Path:
    path = SHARED_MODELS / YUNET
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_manifest_pins_yunet_upstream_by_commit_size_and_hash():
    s = MANIFEST[YUNET]
    assert s.package is YUNET_UPSTREAM and YUNET_UPSTREAM.commit in YUNET_UPSTREAM.url
    assert s.size == 322_906 and len(s.sha256) == 64 and "Apache-2.0" in s.licence
    assert YUNET not in PACKAGED


def test_fetch_from_a_mirror_url_checks_and_installs(served, tmp_path):
    folder, url = served
    shutil.copy(_shared_yunet(), folder / YUNET)
    store = ModelStore(tmp_path / "cache")
    (path,) = store.fetch([YUNET], source_dir=url)
    assert path.read_bytes() == _shared_yunet().read_bytes()
    assert os.stat(path).st_mode & 0o777 == 0o444
    assert store.fetch([YUNET], source_dir=url) == [path]


def test_fetch_refuses_altered_bytes_and_bounds_the_read(served, tmp_path):
    folder, url = served
    data = bytearray(_shared_yunet().read_bytes())
    data[1000] ^= 0xFF
    (folder / YUNET).write_bytes(bytes(data))
    store = ModelStore(tmp_path / "cache")
    with pytest.raises(ModelError, match="refusing"):
        store.fetch([YUNET], source_dir=url)
    assert not (tmp_path / "cache" / YUNET).exists()
    (folder / "big").write_bytes(b"x" * 10_000)
    assert len(download(f"{url}/big", 100)) == 101
    with pytest.raises(ModelError, match="404"):
        download(f"{url}/nothing-here", 100)


def test_fetch_from_a_folder_via_the_command(tmp_path):
    _shared_yunet()
    out = subprocess.run(
        [sys.executable, "-m", "mlsensors", "models", "--dir", str(tmp_path), "fetch",
         "--from", str(SHARED_MODELS), YUNET], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ok  {tmp_path / YUNET}"
    assert ModelStore(tmp_path).missing([YUNET]) == []


def _store_with(tmp_path: Path, model_store: ModelStore, names) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    for name in names:
        shutil.copy(model_store.root / name, root / name)
    return root


def _run_sensor(root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MLSENSORS_MODEL_DIR=str(root),
               # the upstream host is unreachable, as on a machine that reaches only the
               # package index (a dead local proxy makes that certain everywhere)
               https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    return subprocess.run(
        [sys.executable, "-m", "mlsensors", "person", "run", "--source", "demo", "--frames",
         "3", "--json", *extra], capture_output=True, text=True, env=env, timeout=120)


def test_without_yunet_the_sensor_says_so_once_and_runs_on_blazeface(tmp_path, model_store):
    root = _store_with(tmp_path, model_store, [DETECTOR_MODELS["full"],
                                               DETECTOR_MODELS["short"]])
    out = _run_sensor(root)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["num_faces"] == 1 for line in lines)
    notes = [line for line in out.stderr.splitlines() if YUNET in line]
    assert len(notes) == 1, out.stderr
    assert "running with BlazeFace" in notes[0]
    assert f"mlsensors models fetch {YUNET}" in notes[0]
    assert "Traceback" not in out.stderr


def test_with_yunet_the_sensor_uses_it_silently(tmp_path, yunet_store):
    root = _store_with(tmp_path, yunet_store, [DETECTOR_MODELS["full"],
                                               DETECTOR_MODELS["short"], YUNET])
    out = _run_sensor(root)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["num_faces"] for line in out.stdout.splitlines()] == [1, 1, 1]
    assert YUNET not in out.stderr and "BlazeFace" not in out.stderr


def test_auto_resolves_to_what_is_there(tmp_path, model_store, yunet_store):
    from mlsensors.person.scan import BlazeFaceScanner, Scanner
    from mlsensors.person.sensor import SensorOptions, sensor_detector

    without = ModelStore(_store_with(tmp_path, model_store,
                                     [DETECTOR_MODELS["full"], DETECTOR_MODELS["short"]]))
    assert isinstance(sensor_detector(SensorOptions(), without), BlazeFaceScanner)
    assert isinstance(sensor_detector(SensorOptions(), yunet_store), Scanner)
    assert isinstance(sensor_detector(SensorOptions(model="full"), yunet_store),
                      BlazeFaceScanner)


def test_first_run_model_download_keeps_stdout_for_results(tmp_path):
    """A fresh cache: pip runs to fetch the detector. Whatever it says (here: that the
    index at a dead address has nothing) goes to stderr; stdout has no line that is not
    JSON."""
    env = dict(os.environ, MLSENSORS_MODEL_DIR=str(tmp_path / "empty"),
               PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_NO_INDEX="",
               PIP_FIND_LINKS="", PIP_RETRIES="0", PIP_TIMEOUT="2")
    out = subprocess.run(
        [sys.executable, "-m", "mlsensors", "person", "run", "--source", "demo", "--frames",
         "1", "--json", "--model", "full"], capture_output=True, text=True, env=env,
        timeout=120)
    assert out.returncode == 1
    assert out.stdout == ""
    assert "Looking in indexes" in out.stderr and "could not download" in out.stderr


@pytest.mark.parametrize("name", UPSTREAM)
def test_every_upstream_file_is_fetched_from_its_pinned_url(name, served, tmp_path,
                                                            monkeypatch):
    """The pinned-URL path (no mirror), with the URL pointed at a local server: the right
    bytes are installed read-only, other bytes at the URL are refused and nothing stays."""
    source = SHARED_MODELS / name
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    folder, url = served
    shutil.copy(source, folder / name)
    (folder / "other").write_bytes(b"\0" * MANIFEST[name].size)
    s = MANIFEST[name]
    for served_name in (name, "other"):
        monkeypatch.setitem(MANIFEST, name, replace(s, package=replace(
            s.package, url=f"{url}/{served_name}")))
        store = ModelStore(tmp_path / served_name)
        if served_name == "other":
            with pytest.raises(ModelError, match=f"expected {s.sha256}"):
                store.fetch([name])
            assert not (tmp_path / served_name / name).exists()
        else:
            (path,) = store.fetch([name])
            assert path.read_bytes() == source.read_bytes()
            assert os.stat(path).st_mode & 0o777 == 0o444


def test_an_unreachable_upstream_file_is_one_line_with_its_fetch_command(tmp_path,
                                                                          monkeypatch):
    (name,) = UPSTREAM[:1]
    s = MANIFEST[name]
    monkeypatch.setitem(MANIFEST, name, replace(s, package=replace(
        s.package, url="http://127.0.0.1:9/nothing")))
    with pytest.raises(ModelError) as caught:
        ModelStore(tmp_path).fetch([name])
    message = str(caught.value)
    assert "\n" not in message
    assert f"`mlsensors models fetch {name}`" in message
    assert f"`mlsensors models fetch {name} --from DIR`" in message


def _models(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlsensors", "models", "--dir", str(root),
                           *args], capture_output=True, text=True, timeout=60)


def test_list_and_verify_cover_every_entry_and_skip_only_absent_optional_files(
        tmp_path, model_store):
    """A cache with the packaged files only (what a machine that reaches only the package
    index has): verify passes and says SKIP for each optional file; an altered optional
    file fails it, and so does a missing packaged one."""
    root = _store_with(tmp_path, model_store, PACKAGED)
    out = _models(root, "verify")
    assert out.returncode == 0, out.stdout
    verdicts = {line.split()[1]: line.split()[0] for line in out.stdout.splitlines()}
    assert verdicts == {**{n: "PASS" for n in PACKAGED}, **{n: "SKIP" for n in UPSTREAM}}
    rows = json.loads(_models(root, "list", "--json").stdout)
    assert [r["name"] for r in rows] == list(MANIFEST)
    assert {r["name"] for r in rows if r["optional"]} == set(UPSTREAM)
    assert all(r["package"] and r["licence"] for r in rows)
    listing = _models(root, "list").stdout
    for name in UPSTREAM:
        assert f"not fetched (optional: `mlsensors models fetch {name}`)" in listing
    (root / UPSTREAM[0]).write_bytes(b"not the model")
    out = _models(root, "verify")
    assert out.returncode == 1 and f"FAIL  {UPSTREAM[0]}" in out.stdout
    (root / UPSTREAM[0]).unlink()
    (root / PACKAGED[0]).unlink()
    out = _models(root, "verify")
    assert out.returncode == 1 and f"FAIL  {PACKAGED[0]}  not fetched" in out.stdout
