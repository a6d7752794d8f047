"""Face IDs in the real sealed sensing process: the guard keeps the gallery, the sensing
process writes nothing, and every fault of the ID machinery is seen at once.

Real sealed children, the real embedding process and models, kill -9 and SIGSTOP of
real processes. Stand-ins (privacy_children.py) play a compromised sensing process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from guard_helpers import Recorder, child_path  # noqa: F401  (child_path: autouse)

from mlsensors.hub import Hub, RegisterWrite
from mlsensors.models import default_cache_dir
from mlsensors.person.gallery_file import GalleryFile, NotEncrypted, write_new_key
from mlsensors.person.gallery_keeper import GalleryKeeper
from mlsensors.privacy.child import ChildConfig
from mlsensors.privacy.guard import Guard, GuardTiming, late_after
from mlsensors.privacy.launch import descendants_named
from mlsensors.privacy.policy import role
from mlsensors.privacy.sealed import SealedSensor
from mlsensors.wire.registers import Register

pytest.importorskip("dlib", reason="face IDs need the id extra (dlib-bin)")

FAST = GuardTiming(startup_timeout=30.0, watchdog=1.5, backoff_first=0.1, backoff_max=0.4)
REAL = GuardTiming(startup_timeout=30.0, watchdog=5.0, backoff_first=0.1, backoff_max=0.4)
"""For the real sensor: a loaded 2-core machine can stall it for more than 1.5 s."""
EXAMPLES = "faces/face_recognition_examples"


def until(test, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if test():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def first_id(hub: Hub) -> int | None:
    faces = hub.snapshot().result.faces
    return faces[0].id if faces else None


def command(hub: Hub, reg: Register, value: int) -> None:
    hub.command(RegisterWrite(int(reg), value))


def test_forged_calibration_records_are_dropped_and_one_per_request_kept(tmp_path):
    hub = Hub()
    keeper = GalleryKeeper(GalleryFile(tmp_path / "ids" / "g.bin"))
    guard = Guard(hub, ChildConfig(-1, -1, work="privacy_children:forge_calibrations",
                                   memory_bytes=1 << 30), max_rate=20.0, timing=FAST,
                  keeper=keeper)
    with guard:
        until(lambda: hub.snapshot().status.state == "running", what="the child")
        until(lambda: guard.stats().malformed >= 1, what="the unasked record")
        command(hub, Register.CALIBRATE_ID, 6)
        until(lambda: hub.snapshot().result.faces[0].confidence == 1, timeout=10,
              what="the accepted ID sent back to the child")
        until(lambda: guard.stats().malformed >= 6, timeout=10, what="the forgeries")
        stats = guard.stats()
    assert stats.kept == 1 and stats.malformed == 6  # unasked, 4 forged, a second answer
    assert keeper.gallery.ids() == [6] and len(keeper.gallery.embeddings(6)) == 2
    assert GalleryFile(keeper.file.path).load().ids() == [6]
    assert sorted(p.name for p in keeper.file.path.parent.iterdir()) == ["g.bin"]


def test_the_sensing_process_cannot_write_beside_the_gallery_nor_read_the_key(
        tmp_path, model_store):
    folder = tmp_path / "ids"
    folder.mkdir(mode=0o700)
    key = write_new_key(tmp_path / "secret.key")
    hub = Hub()
    keeper = GalleryKeeper(GalleryFile(folder / "g.bin", key))
    config = ChildConfig(-1, -1, work="privacy_children:probe_gallery_folder",
                         identify=True, source=str(folder), model_dir=str(default_cache_dir()),
                         sensor_options=json.dumps({"key": str(key)}), memory_bytes=1 << 30)
    guard = Guard(hub, config, max_rate=20.0, timing=FAST, keeper=keeper)
    with guard:
        until(lambda: hub.snapshot().status.state == "running", what="the child")
        until(lambda: sum("probe" in line for line in guard.logs.lines) >= 2, timeout=10,
              what="the probes")
        pid = guard.child_pid
        with open(f"/proc/{pid}/limits") as f:
            limits = f.read()
        lines = [line for line in guard.logs.lines if "probe" in line]
    assert any("write gallery folder: blocked" in line for line in lines), lines
    assert any("read key: blocked" in line for line in lines), lines
    assert list(folder.iterdir()) == []
    assert [ln.split()[3:5] for ln in limits.splitlines() if ln.startswith("Max file size")] \
        == [["0", "0"]]


@pytest.fixture
def sealed_ids(tmp_path, data_dir, model_store):
    """A sealed sensor with IDs on a looping portrait; yields (sensor, hub, recorder)."""
    made = []

    def make(persist: bool = True, gallery: Path | None = None, key=None, source="obama.jpg"):
        hub = Hub()
        rec = Recorder(hub)
        sensor = SealedSensor(hub, str(data_dir / EXAMPLES / source), loop=True,
                              max_rate=20.0, identify=True, persist=persist,
                              gallery=str(gallery or tmp_path / "ids" / "g.bin"),
                              key_file=key, timing=REAL).start()
        made.append(sensor)
        until(lambda: hub.snapshot().result.faces, what="a face")
        return sensor, hub, rec

    yield make
    for sensor in made:
        sensor.stop()


def test_ids_live_in_the_guard_survive_a_restart_and_erase_reaches_the_memory(sealed_ids):
    sensor, hub, _ = sealed_ids(persist=False)
    gallery = Path(sensor.guard.keeper.file.path)
    command(hub, Register.CALIBRATE_ID, 3)
    until(lambda: first_id(hub) == 3, what="ID 3 after CALIBRATE_ID")
    assert not gallery.exists(), "PERSIST_IDS=0: memory only"
    first = sensor.child_pid
    os.kill(first, signal.SIGKILL)
    until(lambda: sensor.child_pid not in (0, first), what="a new sensing process")
    until(lambda: first_id(hub) == 3, what="ID 3 in the restarted process (from the guard)")
    command(hub, Register.PERSIST_IDS, 1)  # saved now, by the guard
    assert GalleryFile(gallery).load().ids() == [3]
    command(hub, Register.ERASE_IDS, 1)
    assert not gallery.exists() and sensor.guard.keeper.gallery.ids() == []
    until(lambda: first_id(hub) == -1, timeout=10, what="unknown after ERASE_IDS")


def test_a_killed_embedding_process_is_a_fault_at_once_and_the_sensor_recovers(
        sealed_ids, tmp_path):
    sensor, hub, rec = sealed_ids()
    command(hub, Register.CALIBRATE_ID, 2)
    until(lambda: first_id(hub) == 2, what="ID 2")
    sensing = sensor.child_pid
    # the launcher's waiter started the embedding process beside the sensing process
    with open(f"/proc/{sensing}/status") as f:
        waiter = int(next(line for line in f if line.startswith("PPid:")).split()[1])
    (embedder,) = descendants_named(waiter, role("embedder").comm)
    mark = len(rec.snaps)
    os.kill(embedder, signal.SIGKILL)
    until(lambda: any(s.status.state == "fault" for _, s in rec.snaps[mark:]), timeout=5,
          what="the fault (the watchdog would take 5 s and never fire: frames go on)")
    until(lambda: sensor.child_pid not in (0, sensing), what="a new sensing process")
    until(lambda: first_id(hub) == 2, what="ID 2 again, from the new embedding process")
    after = [s for _, s in rec.snaps[mark:]]
    fault = next(i for i, s in enumerate(after) if s.status.state == "fault")
    assert "embedding process" in after[fault].status.detail
    back = next(i for i, s in enumerate(after) if i > fault and s.status.state == "running")
    assert all(f.id == -1 for s in after[fault:back] for f in s.result.faces)
    assert any("embedding process ended" in line for line in sensor.guard.logs.lines)


def test_a_stopped_sensing_process_has_its_faces_withdrawn_before_the_watchdog():
    hub = Hub()
    rec = Recorder(hub)
    guard = Guard(hub, ChildConfig(-1, -1, work="privacy_children:steady",
                                   memory_bytes=1 << 30), max_rate=20.0, timing=FAST)
    with guard:
        until(lambda: len([s for _, s in rec.snaps if s.result.faces]) >= 10,
              what="a steady stream")
        mark = len(rec.snaps)
        pid = guard.child_pid
        os.kill(pid, signal.SIGSTOP)
        try:
            until(lambda: guard.stats().hangs >= 1, timeout=10, what="the watchdog")
        finally:
            with contextlib.suppress(ProcessLookupError):  # reaped after the kill
                os.kill(pid, signal.SIGCONT)
        stats = guard.stats()
    after = [s for _, s in rec.snaps[mark:]]
    gone = next(i for i, s in enumerate(after) if not s.result.faces)
    assert "faces are withdrawn" in after[gone].status.detail
    assert all(not s.result.faces for s in after[gone:])
    states = [s.status.detail for s in after[gone:] if s.status.state == "fault"]
    assert "no frame for 1 s" in states[0] and "hung" in states[-1]
    assert stats.late >= 1


def test_late_after_is_two_recent_frame_intervals():
    assert late_after([0.05] * 8, 0.05) == pytest.approx(0.15)
    assert late_after([0.02, 0.03, 0.1, 0.02], 0.01) == pytest.approx(0.21)
    assert late_after([0.05], 0.05) == 1.0  # not known yet


def test_a_damaged_gallery_is_set_aside_with_a_status_detail_and_a_log_line(
        sealed_ids, tmp_path, caplog):
    gallery = tmp_path / "ids" / "g.bin"
    gallery.parent.mkdir()
    gallery.write_bytes(b"MLSGALRY" + bytes(200))
    with caplog.at_level("WARNING", logger="mlsensors.gallery"):
        _, hub, _ = sealed_ids(gallery=gallery)
    assert "kept as" in hub.snapshot().status.detail
    assert any("kept as" in r.getMessage() for r in caplog.records)
    assert [p.name.startswith("g.bin.bad-") for p in gallery.parent.iterdir()] == [True]


def test_a_plaintext_gallery_under_a_key_stops_the_start(tmp_path, model_store):
    gallery = tmp_path / "g.bin"
    from mlsensors.person.gallery import Gallery

    GalleryFile(gallery).save(Gallery())
    key = write_new_key(tmp_path / "k")
    with pytest.raises(NotEncrypted, match="mlsensors id encrypt"):
        SealedSensor(Hub(), "demo", identify=True, gallery=str(gallery), key_file=str(key))
    assert GalleryFile(gallery).load().ids() == []  # untouched, still plaintext
