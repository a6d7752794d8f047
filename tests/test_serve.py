"""`mlsensors serve` as users run it: the real CLI, the sealed sensing process, the virtual
I2C bus and the Person Sensor driver, with every register going through all of them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlsensors.errors import ProtocolError
from mlsensors.transports.client import PersonSensorClient

pytest.importorskip("dlib", reason="face IDs need the id extra (dlib-bin)")

EXAMPLES = "faces/face_recognition_examples"


def serve(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlsensors", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def connect(sock: Path, proc: subprocess.Popen, timeout: float = 30) -> PersonSensorClient:
    deadline = time.monotonic() + timeout
    while True:  # the socket file exists from bind(), connections from listen()
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the bus never came up"
        if sock.exists():
            try:
                return PersonSensorClient(f"unix:{sock}")
            except ProtocolError:
                pass
        time.sleep(0.05)


def wait_for(client: PersonSensorClient, test, timeout: float = 30, what: str = ""):
    """Read the sensor until `test(result)` holds; the last result otherwise fails."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = client.read_results()
        if test(result):
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}: last {result}")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return proc.returncode, err


def sensing_child(pid: int) -> int:
    from mlsensors.privacy.audit import find_sealed_children

    def ppid(p) -> str:
        return Path(f"/proc/{p}/status").read_text().split("PPid:")[1].split()[0]

    # serve → the launcher's waiter → the sealed sensing process
    kids = [k for k in find_sealed_children() if ppid(ppid(k)) == str(pid)]
    assert len(kids) == 1, kids
    return kids[0]


def first_id(result) -> int | None:
    return result.faces[0].id if result.faces else None


def test_ids_learnt_used_switched_kept_and_erased_through_the_bus(tmp_path, data_dir,
                                                                  model_store):
    gallery = tmp_path / "ids" / "gallery.bin"
    sock = tmp_path / "bus.sock"
    common = ("--loop", "--id", "--gallery", str(gallery), "--bus", f"unix:{sock}",
              "--max-rate", "20")
    proc = serve("--source", str(data_dir / EXAMPLES / "obama.jpg"), *common)
    try:
        client = connect(sock, proc)
        found = wait_for(client, lambda r: r.num_faces == 1, what="a face")
        assert found.faces[0].id == -1 and found.faces[0].id_confidence == 0
        client.calibrate(5)
        known = wait_for(client, lambda r: first_id(r) == 5, what="ID 5 after CALIBRATE_ID")
        assert known.faces[0].id_confidence > 50
        assert gallery.is_file(), "PERSIST_IDS defaults to on: the ID is saved"
        client.enable_id(False)
        wait_for(client, lambda r: first_id(r) == -1, what="id -1 with ENABLE_ID=0")
        client.enable_id(True)
        wait_for(client, lambda r: first_id(r) == 5, what="ID 5 again with ENABLE_ID=1")
        with pytest.raises(ProtocolError):
            client.single_shot()  # only in standby, as on the SEN21231
        audit = subprocess.run([sys.executable, "-m", "mlsensors", "audit", "--pid",
                                str(sensing_child(proc.pid))],
                               capture_output=True, text=True, timeout=60)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "PASS  embedding process sealed" in audit.stdout
        assert "Max file size: soft 0, hard 0" in audit.stdout  # writes nothing, even with IDs
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err

    # A new process, a different photo of the same person: the stored ID is recognised.
    proc = serve("--source", str(data_dir / EXAMPLES / "obama2.jpg"), *common)
    try:
        client = connect(sock, proc)
        wait_for(client, lambda r: first_id(r) == 5, what="the persisted ID 5")
        client.erase()
        deadline = time.monotonic() + 10
        while gallery.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not gallery.exists(), "ERASE_IDS removes the stored IDs"
        assert not list(gallery.parent.iterdir())
        wait_for(client, lambda r: first_id(r) == -1, what="unknown after ERASE_IDS")
        assert proc.poll() is None, "the sensor keeps running"
    finally:
        code, err = stop(proc)
    assert code == 0, err


def test_standby_single_shot_and_refused_writes_without_ids(tmp_path, data_dir, model_store):
    sock = tmp_path / "bus.sock"
    proc = serve("--source", str(data_dir / EXAMPLES / "two_people.jpg"), "--loop",
                 "--bus", f"unix:{sock}", "--max-rate", "20")
    try:
        client = connect(sock, proc)
        wait_for(client, lambda r: r.num_faces == 2, what="two faces")
        with pytest.raises(ProtocolError):
            client.enable_id(True)  # serve was started without --id
        with pytest.raises(ProtocolError):
            client.calibrate(1)
        client.set_mode(False)
        time.sleep(0.5)
        client.single_shot()
        shot = wait_for(client, lambda r: r.num_faces == 2, what="the single shot's faces")
        assert all(f.id == -1 for f in shot.faces)
        client.set_mode(True)
        wait_for(client, lambda r: r.num_faces == 2, what="continuous again")
    finally:
        code, err = stop(proc)
    assert code == 0, err


def test_a_finite_source_ends_the_service(tmp_path, data_dir, model_store):
    sock = tmp_path / "bus.sock"
    proc = serve("--source", str(data_dir / EXAMPLES / "obama.jpg"), "--bus", f"unix:{sock}")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not sock.exists(), "the bus socket is removed on the way out"


def test_serve_without_a_transport_is_a_one_line_error():
    proc = serve("--source", "demo")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nothing to serve to" in lines[0], err


@pytest.mark.parametrize("args, message", [
    (("--duration", "0", "--bus", "unix:/tmp/x.sock"), "--duration"),
    (("--source", "/no/such/file.jpg", "--bus", "unix:/tmp/x.sock"), "does not exist"),
    (("--id", "--gallery", "/tmp", "--bus", "unix:/tmp/x.sock"), "is a folder"),
    (("--id", "--gallery", "/proc/1/no/gallery.bin", "--bus", "unix:/tmp/x.sock"),
     "cannot create the gallery folder"),
])
def test_bad_arguments_are_one_line_errors(args, message):
    proc = serve(*args)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1



def _limit_file_size():
    """In the child before exec: files this process writes cannot grow past 1 KiB, as on
    a full disk (Python ignores SIGXFSZ, so a write fails with EFBIG)."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))


def test_writes_the_sensor_cannot_apply_are_refused_on_the_bus(tmp_path, data_dir,
                                                              model_store):
    from mlsensors.cli.main import main

    gallery = tmp_path / "ids" / "gallery.bin"
    photos = [str(data_dir / EXAMPLES / name) for name in ("obama.jpg", "obama2.jpg")]
    assert main(["id", "enroll", "--gallery", str(gallery), "--id", "1", *photos]) == 0
    assert gallery.stat().st_size > 1024
    sock = tmp_path / "bus.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlsensors", "serve", "--source", photos[0], "--loop", "--id",
         "--gallery", str(gallery), "--no-persist", "--bus", f"unix:{sock}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_limit_file_size)
    try:
        client = connect(sock, proc)
        wait_for(client, lambda r: first_id(r) == 1, what="the enrolled ID")
        client.enable_id(False)
        with pytest.raises(ProtocolError):
            client.calibrate(3)  # identification is off: nothing could be learnt
        client.enable_id(True)
        client.set_mode(False)
        with pytest.raises(ProtocolError):
            client.calibrate(3)  # standby: no frame to learn from
        client.set_mode(True)
        with pytest.raises(ProtocolError):
            client.persist(True)  # the disk is full: not saved, so not acknowledged
        wait_for(client, lambda r: first_id(r) == 1, what="the ID, still known")
        client.erase()  # never refused: forgotten, and what failed is in the log
        wait_for(client, lambda r: first_id(r) == -1, what="unknown after ERASE_IDS")
        assert not gallery.exists()
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "PERSIST_IDS refused: cannot write gallery" in err
    assert "IDs forgotten, but erase of gallery" in err and "not overwritten" in err
    assert "Traceback" not in err


def test_a_damaged_gallery_under_serve_is_set_aside_and_logged(tmp_path, data_dir,
                                                             model_store):
    gallery = tmp_path / "ids" / "gallery.bin"
    gallery.parent.mkdir()
    gallery.write_bytes(b"MLSGALRY" + bytes(100))
    sock = tmp_path / "bus.sock"
    proc = serve("--source", str(data_dir / EXAMPLES / "obama.jpg"), "--loop", "--id",
                 "--gallery", str(gallery), "--bus", f"unix:{sock}")
    try:
        wait_for(connect(sock, proc), lambda r: r.num_faces == 1, what="a face")
    finally:
        code, err = stop(proc)
    assert code == 0, err
    line = next(ln for ln in err.splitlines() if "kept as" in ln)
    assert line.startswith("mlsensors: gallery: ") and "starting empty" in line, line
    assert [p.name.startswith("gallery.bin.bad-") for p in gallery.parent.iterdir()] == [True]


@pytest.mark.parametrize("case", ["fifo gallery", "device gallery", "fifo key",
                                  "device key", "plaintext under a key"])
def test_gallery_and_key_mistakes_stop_serve_in_one_line(tmp_path, case):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    gallery, key = tmp_path / "ids" / "g.bin", None
    bad = {"fifo": fifo, "device": Path("/dev/zero")}.get(case.split()[0])
    if case.endswith("gallery") and bad:
        gallery = bad
    elif bad:
        key = bad
    else:
        from mlsensors.person.gallery import Gallery
        from mlsensors.person.gallery_file import GalleryFile, write_new_key

        GalleryFile(gallery).save(Gallery())
        key = write_new_key(tmp_path / "k")
    args = ["--id", "--gallery", str(gallery), "--bus", f"unix:{tmp_path / 'bus.sock'}"]
    proc = serve("--source", "demo", *args, *(["--key", str(key)] if key else []))
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    want = "not a regular file" if "plaintext" not in case else "mlsensors id encrypt"
    assert want in err, err
