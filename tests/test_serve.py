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
    while not sock.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the bus never came up"
        time.sleep(0.05)
    return PersonSensorClient(f"unix:{sock}")


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

    kids = [k for k in find_sealed_children()
            if Path(f"/proc/{k}/status").read_text().split("PPid:")[1].split()[0] == str(pid)]
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
        assert "Max file size: soft 65536" in audit.stdout
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

